"""Rate limit and spike arrest: exact admission per strategy, headers, 429 problems, outage modes."""

from __future__ import annotations

import asyncio
import re
import socket

import pytest

from policies.stores import MemoryCounterStore, RedisCounterStore
from tests.unit.policies.limits_kit import bindings_with, client, limited_app

CRM = "/system/crm/v1/ping"
ERP = "/system/erp/v1/ping"


def _plans(strategy: str = "moving-window", failure: str = "open", **limits: int) -> dict[str, object]:
    return {"plans": {"p": {"strategy": strategy, "on_store_failure": failure, "limits": limits}},
            "default_plan": "p"}


def _dead_redis_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}"  # nothing listens there any more


class TestAdmission:
    @pytest.mark.parametrize("strategy", ["fixed-window", "moving-window", "sliding-window-counter"])
    async def test_concurrent_burst_admits_exactly_the_limit(self, strategy: str) -> None:
        app, _ = limited_app(bindings_with(**_plans(strategy, per_minute=20)), MemoryCounterStore())
        async with client(app) as http:
            answers = await asyncio.gather(*(http.get(CRM) for _ in range(60)))
        assert sorted(r.status_code for r in answers).count(200) == 20
        assert {r.status_code for r in answers} == {200, 429}

    async def test_consumers_and_apis_are_counted_apart(self) -> None:
        app, _ = limited_app(bindings_with(**_plans(per_minute=2)), MemoryCounterStore())
        async with client(app) as http:
            for path, who in [(CRM, "a"), (CRM, "b"), (ERP, "a")]:
                codes = [(await http.get(path, headers={"X-Client": who})).status_code for _ in range(3)]
                assert codes == [200, 200, 429], (path, who)

    async def test_consumer_override_beats_the_plan(self) -> None:
        extra = _plans(per_minute=1)
        extra["consumers"] = {"vip": {"plan": "p", "limits": {"per_minute": 3}}}
        app, _ = limited_app(bindings_with(**extra), MemoryCounterStore())
        async with client(app) as http:
            vip = [(await http.get(CRM, headers={"X-Client": "vip"})).status_code for _ in range(4)]
            other = [(await http.get(CRM, headers={"X-Client": "x"})).status_code for _ in range(2)]
        assert vip == [200, 200, 200, 429] and other == [200, 429]


class TestHeaders:
    async def test_policy_and_remaining_on_every_governed_response(self) -> None:
        app, _ = limited_app(bindings_with(**_plans(per_second=5, per_minute=3)), MemoryCounterStore())
        async with client(app) as http:
            answers = [await http.get(CRM) for _ in range(4)]
        for r in answers:
            assert r.headers["RateLimit-Policy"] == '"second";q=5;w=1, "minute";q=3;w=60'
        remaining = [int(re.search(r'"minute";r=(\d+);t=(\d+)', r.headers["RateLimit"])[1])  # type: ignore[index]
                     for r in answers]
        assert remaining == [2, 1, 0, 0]

    async def test_429_is_a_problem_with_retry_after(self) -> None:
        app, _ = limited_app(bindings_with(**_plans(per_minute=1)), MemoryCounterStore())
        async with client(app) as http:
            await http.get(CRM)
            refused = await http.get(CRM)
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/problem+json")
        body = refused.json()
        assert body["type"].endswith("/rate-limited") and body["code"] == "rate_limited" and body["status"] == 429
        assert body["instance"] == CRM
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert '"minute";r=0;' in refused.headers["RateLimit"]


class TestSpikeArrest:
    async def test_caps_all_consumers_together(self) -> None:
        bindings = bindings_with(spike_arrest={"system.erp": {"per_second": 3}}, **_plans(per_minute=100))
        app, _ = limited_app(bindings, MemoryCounterStore())
        async with client(app) as http:
            answers = await asyncio.gather(*(http.get(ERP, headers={"X-Client": f"c{i}"}) for i in range(8)))
            crm = await http.get(CRM, headers={"X-Client": "c0"})
        assert [r.status_code for r in answers].count(200) == 3
        refused = next(r for r in answers if r.status_code == 429)
        assert refused.json()["code"] == "rate_limited" and "all consumers" in refused.json()["detail"]
        assert crm.status_code == 200  # other APIs are not arrested
        assert '"spike";q=3;w=1' in answers[0].headers["RateLimit-Policy"]


class TestStoreOutage:
    async def test_fail_open_admits_without_headers(self) -> None:
        store = RedisCounterStore(url=_dead_redis_url(), namespace="t")
        app, _ = limited_app(bindings_with(**_plans(failure="open", per_minute=1, per_day=1)), store)
        async with client(app) as http:
            answers = [await http.get(CRM) for _ in range(3)]
        assert [r.status_code for r in answers] == [200, 200, 200]
        assert "RateLimit" not in answers[0].headers
        await store.close()

    async def test_fail_closed_answers_503_problem(self) -> None:
        store = RedisCounterStore(url=_dead_redis_url(), namespace="t")
        app, _ = limited_app(bindings_with(**_plans(failure="closed", per_minute=5)), store)
        async with client(app) as http:
            refused = await http.get(CRM)
        assert refused.status_code == 503 and refused.json()["code"] == "limits_unavailable"
        assert refused.headers["Retry-After"] == "1"
        await store.close()
