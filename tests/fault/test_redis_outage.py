"""Redis stopped mid-load and restarted: each plan's failure mode holds, nothing crashes, limits come back alone.

Uses its own redis-server (`tests.redis_server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from gateway.app import create_gateway
from gateway.settings import load_settings
from policies.bindings import Bindings, load_bindings
from tests.redis_server import RedisServer, own_redis
from tests.stack import FAST_VENDOR_RETRY, lifespan

ACCOUNTS = "/system/crm/v1/accounts?limit=1"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with own_redis() as server:
        yield server


def _bindings() -> Bindings:
    doc = msgspec.to_builtins(load_bindings())
    for mode in ("open", "closed"):
        doc["plans"][f"t-{mode}"] = {"on_store_failure": mode, "limits": {"per_minute": 30}}
        doc["consumers"][f"outage-{mode}"] = {"plan": f"t-{mode}"}
    return msgspec.convert(doc, Bindings)


@contextlib.asynccontextmanager
async def _gateway(home: Path, redis_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, dict[str, str]]]]:
    settings = load_settings(env={}, home=str(home), seed_demo=False, redis_url=redis_url,
                             redis_prefix=f"psconnect-test-{uuid.uuid4().hex[:12]}")
    gateway = create_gateway(settings, bindings=_bindings(), vendor_retry=FAST_VENDOR_RETRY)
    transport = httpx.ASGITransport(app=gateway.app)  # type: ignore[arg-type]
    async with lifespan(gateway.app), \
            httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as http:  # type: ignore[arg-type]
        headers: dict[str, dict[str, str]] = {}
        for mode in ("open", "closed"):
            cid = f"outage-{mode}"
            secret = gateway.oauth.clients.create(cid, ("system.crm:read",), client_id=cid)[1]
            r = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
            headers[mode] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        yield http, headers


async def _burst(http: httpx.AsyncClient, headers: dict[str, str], n: int) -> list[int]:
    return [r.status_code for r in await asyncio.gather(*(http.get(ACCOUNTS, headers=headers) for _ in range(n)))]


async def test_outage_follows_each_plan_and_recovers_without_restart(
        tmp_path: Path, redis_server: RedisServer) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    store_log = logging.getLogger("psconnect.policies.store")  # the gateway's logging does not propagate
    store_log.addHandler(handler)
    try:
        await _outage_scenario(tmp_path, redis_server)
    finally:
        store_log.removeHandler(handler)
    down = [r for r in records if "unavailable" in r.getMessage()]
    up = [r for r in records if "recovered" in r.getMessage()]
    assert len(down) == 1 and len(up) == 1  # once per outage, not per request


async def _outage_scenario(tmp_path: Path, redis_server: RedisServer) -> None:
    async with _gateway(tmp_path, f"redis://127.0.0.1:{redis_server.port}/0") as (http, headers):
        before = await _burst(http, headers["open"], 10)
        assert before == [200] * 10

        redis_server.stop()  # mid-load: the next requests find Redis gone
        during_open = await _burst(http, headers["open"], 40)
        during_closed = await _burst(http, headers["closed"], 10)
        # fail-open admits everything (even past the 30/min limit); fail-closed answers its documented 503
        assert during_open == [200] * 40
        assert set(during_closed) == {503}
        refused = await http.get(ACCOUNTS, headers=headers["closed"])
        assert refused.json()["code"] == "limits_unavailable" and refused.headers["Retry-After"] == "1"
        assert "RateLimit" not in (await http.get(ACCOUNTS, headers=headers["open"])).headers

        redis_server.start()  # same port, empty: counting starts afresh
        await asyncio.sleep(0.6)  # past the store's probe interval
        after = await _burst(http, headers["open"], 40)
        assert after.count(200) == 30 and after.count(429) == 10  # limits enforced again, no restart
        closed_after = await _burst(http, headers["closed"], 5)
        assert closed_after == [200] * 5
