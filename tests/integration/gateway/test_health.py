"""Liveness and readiness as an orchestrator probes them: alive answers while the loop does; ready names what
this process cannot work without, and a dead dependency takes it out of rotation without a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from litestar import Litestar

from foundation.db import create_engine
from gateway.health import health_router
from tests.ports import free_port
from tests.stack import Stack, running_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as s:
        yield s


async def test_a_started_gateway_is_alive_and_ready_without_a_token(stack: Stack) -> None:
    for path in ("/health", "/health/live"):
        alive = await stack.http.get(path, headers={"Authorization": ""})
        assert alive.status_code == 200 and alive.json() == {"status": "ok"}
    ready = await stack.http.get("/health/ready", headers={"Authorization": ""})
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "role": "all",
                            "checks": {"database": "ok", "redis": "not configured", "workflows": "ok"}}


async def test_a_dead_dependency_makes_the_process_not_ready_but_still_alive(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'probe.sqlite'}")
    launched = False
    app = Litestar(route_handlers=[health_router(engine, f"redis://127.0.0.1:{free_port()}/0", "worker",
                                                 lambda: launched)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as http:
        ready = await http.get("/health/ready")
        assert ready.status_code == 503
        assert ready.headers["content-type"].startswith("application/problem+json")
        body = ready.json()
        assert body["title"] == "Not ready" and body["checks"]["database"] == "ok"
        assert body["checks"]["redis"].startswith("ConnectionError")
        assert body["checks"]["workflows"] == "RuntimeError: DBOS is not launched yet"
        assert "redis" in body["detail"] and "workflows" in body["detail"] and "database" not in body["detail"]
        assert (await http.get("/health/live")).status_code == 200  # no restart for a dependency's outage
        launched = True
        assert "workflows" not in (await http.get("/health/ready")).json()["detail"]
    engine.dispose()
