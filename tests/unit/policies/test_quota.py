"""Quotas: calendar counters that block when used up, spent only by admitted requests, and the usage meter."""

from __future__ import annotations

import datetime as dt

from policies.plans import Allowance, ResolvedPlan
from policies.quota import quota_windows
from policies.stores import MemoryCounterStore
from tests.unit.policies.limits_kit import bindings_with, client, limited_app

CRM = "/system/crm/v1/ping"


def _plans(**limits: int) -> dict[str, object]:
    return {"plans": {"p": {"limits": limits}}, "default_plan": "p"}


class TestQuota:
    async def test_daily_quota_blocks_until_midnight_utc(self) -> None:
        app, _ = limited_app(bindings_with(**_plans(per_day=3, per_month=100)), MemoryCounterStore())
        async with client(app) as http:
            answers = [await http.get(CRM) for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        refused = answers[-1].json()
        assert refused["code"] == "quota_exceeded" and "3 per day" in refused["detail"]
        now = dt.datetime.now(dt.UTC)
        to_midnight = (dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC) - now)
        assert abs(int(answers[-1].headers["Retry-After"]) - to_midnight.total_seconds()) <= 2
        assert answers[0].headers["RateLimit-Policy"] == '"day";q=3;w=86400, "month";q=100;w=2592000'
        assert [r.headers["RateLimit"].split(";")[1] for r in answers[:3]] == ["r=2", "r=1", "r=0"]

    async def test_rate_limited_requests_do_not_spend_quota(self) -> None:
        app, meter = limited_app(bindings_with(**_plans(per_minute=2, per_day=10)), MemoryCounterStore())
        async with client(app) as http:
            codes = [(await http.get(CRM)).status_code for _ in range(5)]
        assert codes == [200, 200, 429, 429, 429]
        plan = ResolvedPlan(plan="p", strategy="fixed-window", on_store_failure="open",
                            allowance=Allowance(per_day=10))
        (day,) = await meter.quotas(plan, "c1", "system.crm", dt.datetime.now(dt.UTC))
        assert (day.used, day.remaining) == (2, 8)
        assert await meter.read("c1", "system.crm", dt.datetime.now(dt.UTC).date()) == (5, 3)

    async def test_quotas_are_per_consumer(self) -> None:
        app, _ = limited_app(bindings_with(**_plans(per_day=1)), MemoryCounterStore())
        async with client(app) as http:
            codes = [(await http.get(CRM, headers={"X-Client": who})).status_code for who in ("a", "b", "a")]
        assert codes == [200, 200, 429]


def test_calendar_keys_change_at_day_and_month_boundaries() -> None:
    plan = ResolvedPlan(plan="p", strategy="fixed-window", on_store_failure="open",
                        allowance=Allowance(per_day=1, per_month=2))
    late = quota_windows(plan, dt.datetime(2025, 12, 31, 23, 59, 59, tzinfo=dt.UTC))
    early = quota_windows(plan, dt.datetime(2026, 1, 1, 0, 0, 0, tzinfo=dt.UTC))
    assert [k for _, _, k in late] == ["2025-12-31", "2025-12"]
    assert [k for _, _, k in early] == ["2026-01-01", "2026-01"]
