"""`psconnect serve --workers 2`: `/metrics` on any worker reports the one merged set (prometheus-client's
multiprocess mode), not the share of the worker that happened to take the scrape."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.multiworker.test_executors import ISSUER, _env, _serve, _token
from tests.ports import free_port
from tests.processes import register_client, stop
from tests.stack import postgres_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
async def database() -> Any:
    async with postgres_database() as url:
        yield url


def ungoverned_200s(port: int, headers: dict[str, str]) -> float:
    with httpx.Client() as fresh:  # a new connection each scrape: either worker may take it
        text = fresh.get(f"http://127.0.0.1:{port}/metrics", headers=headers).text
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "psconnect_gateway_requests_total" and s.labels["api"] == "-"
               and s.labels["status"] == "200")


def writers(home: Path) -> set[str]:
    """Pids of the workers that wrote values to the multiprocess directory."""
    return {m.group(1) for f in (home / "prometheus").iterdir() if (m := re.search(r"_(\d+)\.db$", f.name))}


def test_every_worker_reports_the_merged_set(tmp_path: Path, database: str) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = _env(home, database, REDIS_URL="redis://127.0.0.1:6379/0", PSCONNECT_LIMITS_STORE="redis",
               PSCONNECT_REDIS_PREFIX=f"psconnect-test-{uuid.uuid4().hex[:12]}")
    parent = _serve(home, port, env, "--workers", "2")
    try:
        headers = _token(port, register_client(database, home, ISSUER))
        before = ungoverned_200s(port, headers)
        sent = 0
        while sent < 400 and len(writers(home)) < 2:  # until both workers have served (the kernel picks)
            for _ in range(10):
                with httpx.Client() as fresh:
                    assert fresh.get(f"http://127.0.0.1:{port}/health").status_code == 200
            sent += 10
        assert len(writers(home)) == 2
        for _ in range(6):
            assert ungoverned_200s(port, headers) - before == sent
    finally:
        stop(parent)
