"""Quota: daily and monthly request allowances per consumer and API, and the usage meter.

Quotas are calendar counters in UTC — the day's counter is keyed by the date, the
month's by the month — so every node agrees on when they reset and the portal can
show "resets at 00:00 UTC". Each is a `limits` fixed window in the shared store,
hit atomically (no check-then-increment). Runs after the rate limit (900 < 910), so
a request refused for speed does not spend quota.

`UsageMeter` keeps the gateway's own per-consumer counters (requests and 429s per
API per day) that its `report()` (the portal's `PolicyRuntime.usage()`) shows beside
the quotas' remaining.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import TYPE_CHECKING, ClassVar, Literal

import msgspec
from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMonth

from policies.base import RequestContext
from policies.plans import PlanLookup, ResolvedPlan, resolve_plan
from policies.rate_limit import (
    PlanPolicy,
    RateLimitConfig,
    add_limit_states,
    consumer_of,
    exhausted_of,
    hit_limits,
    rate_limited,
)
from policies.registry import PolicyBuild, PolicyFactory
from policies.stores import CounterStore, StoreUnavailable
from policies.stores.batch import CounterHit, CounterKind, LimitHit

if TYPE_CHECKING:
    from policies.bindings import Bindings

__all__ = ["FACTORY", "ApiUsage", "Quota", "QuotaUsage", "UsageMeter", "UsageReport", "quota_windows"]

Period = Literal["day", "month"]
_USAGE_TTL = 3 * 86400


class QuotaUsage(msgspec.Struct, frozen=True, kw_only=True):
    period: Period
    limit: int
    used: int
    remaining: int
    resets_at: dt.datetime


class ApiUsage(msgspec.Struct, frozen=True, kw_only=True):
    api: str
    requests_today: int
    rejected_today: int
    """Requests answered 429 today (rate limit, spike arrest or quota)."""
    quotas: list[QuotaUsage]


class UsageReport(msgspec.Struct, frozen=True, kw_only=True):
    """One consumer's usage, from the gateway's own counters (what the portal shows)."""

    client_id: str
    plan: str
    day: dt.date
    apis: list[ApiUsage]
    store_available: bool = True


def _period_end(period: Period, now: dt.datetime) -> dt.datetime:
    if period == "day":
        return dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return dt.datetime(year, month, 1, tzinfo=dt.UTC)


def quota_windows(plan: ResolvedPlan, now: dt.datetime) -> list[tuple[Period, RateLimitItem, str]]:
    """The quota counters that apply now: (period, limits item, calendar key)."""
    windows: list[tuple[Period, RateLimitItem, str]] = []
    if plan.allowance.per_day is not None:
        windows.append(("day", RateLimitItemPerDay(plan.allowance.per_day), now.strftime("%Y-%m-%d")))
    if plan.allowance.per_month is not None:
        windows.append(("month", RateLimitItemPerMonth(plan.allowance.per_month), now.strftime("%Y-%m")))
    return windows


class UsageMeter:
    """Requests and 429s per consumer, API and UTC day, in the same store as the limits."""

    def __init__(self, store: CounterStore) -> None:
        self.store = store

    @staticmethod
    def _key(consumer: str, api: str, what: str, day: dt.date | None = None) -> str:
        day = day or dt.datetime.now(dt.UTC).date()
        return f"usage/{day.isoformat()}/{consumer}/{api}/{what}"

    def counters(self, consumer: str, api: str, *, requests: CounterKind | None = "count") -> tuple[CounterHit, ...]:
        """Counted with the request's limits: the request (as `requests` says; None: counted already) and,
        when refused, the refusal."""
        rejected = CounterHit("count_refused", self._key(consumer, api, "rejected"), _USAGE_TTL)
        if requests is None:
            return (rejected,)
        return CounterHit(requests, self._key(consumer, api, "requests"), _USAGE_TTL), rejected

    async def read(self, consumer: str, api: str, day: dt.date) -> tuple[int, int]:
        return (await self.store.get(self._key(consumer, api, "requests", day)),
                await self.store.get(self._key(consumer, api, "rejected", day)))

    async def quotas(self, plan: ResolvedPlan, consumer: str, api: str, now: dt.datetime) -> list[QuotaUsage]:
        limiter = self.store.limiter("fixed-window")
        found: list[QuotaUsage] = []
        for period, item, key in quota_windows(plan, now):
            stats = await self.store.guarded(lambda item=item, key=key: limiter.get_window_stats(  # type: ignore[misc]
                item, "quota", consumer, api, key))
            found.append(QuotaUsage(period=period, limit=item.amount, used=item.amount - stats.remaining,
                                    remaining=stats.remaining, resets_at=_period_end(period, now)))
        return found

    async def report(self, bindings: Bindings, client_id: str, subscriptions: PlanLookup | None = None) -> UsageReport:
        """Today's requests and 429s and the quotas left, per API, for one consumer (`PolicyRuntime.usage`).

        When the limit store is down the counters read as zero and `store_available` is False.
        """
        now = dt.datetime.now(dt.UTC)
        b = bindings
        subscribed = None
        if subscriptions is not None and client_id not in b.consumers:
            subscribed = subscriptions(client_id)
        apis: list[ApiUsage] = []
        available = True
        for api in b.apis:
            plan = resolve_plan(b.plans, b.consumers, b.default_plan, client_id, api, subscribed)
            try:
                requests, rejected = await self.read(client_id, api, now.date())
                quotas = await self.quotas(plan, client_id, api, now)
            except StoreUnavailable:
                available, requests, rejected, quotas = False, 0, 0, []
            apis.append(ApiUsage(api=api, requests_today=requests, rejected_today=rejected, quotas=quotas))
        plan_name = resolve_plan(b.plans, b.consumers, b.default_plan, client_id, "", subscribed).plan
        return UsageReport(client_id=client_id, plan=plan_name, day=now.date(), apis=apis,
                           store_available=available)


class Quota(PlanPolicy):
    name: ClassVar[str] = "quota"
    order: ClassVar[int] = 900

    async def on_request(self, ctx: RequestContext) -> None:
        consumer = consumer_of(ctx)
        plan = self.resolve(consumer)
        now = dt.datetime.now(dt.UTC)
        windows = quota_windows(plan, now)
        if not windows:
            return
        hits = [(period, LimitHit("fixed-window", item, ("quota", consumer, self.config.api, key)))
                for period, item, key in windows]
        counters = self.meter.counters(consumer, self.config.api, requests=None) if self.meter else ()
        outcome = await hit_limits(self.store, hits, counters, on_store_failure=plan.on_store_failure)
        if outcome is None:
            return
        admitted, states = outcome
        epoch = time.time()
        # A calendar quota resets at the start of the next UTC day or month, not one window after first use.
        states = [msgspec.structs.replace(s, reset=max(1, math.ceil(_period_end(period, now).timestamp() - epoch)))
                  for (period, _, _), s in zip(windows, states, strict=True)]
        add_limit_states(ctx, states)
        if not admitted:
            exhausted = exhausted_of(states)
            periods = " and ".join(f"{s.quota} per {s.name}" for s in exhausted)
            raise rate_limited(exhausted, code="quota_exceeded", detail=(
                f"The quota of plan {plan.plan!r} on {self.config.api} ({periods}) is used up; it resets at the "
                f"start of the next UTC {exhausted[-1].name}."))


def _build(b: PolicyBuild) -> Quota:
    config = RateLimitConfig(api=b.api, plans=b.bindings.plans, default_plan=b.bindings.default_plan,
                             consumers=b.bindings.consumers)
    return Quota(config, b.services.counters, b.services.meter, b.services.subscriptions)


FACTORY = PolicyFactory(name="quota", build=_build)
"""Registered in the entry-point group psconnect.policies; `plans`, `default_plan` and `consumers` configure it."""
