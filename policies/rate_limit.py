"""Rate limit: per consumer, per API, per second and per minute, by the consumer's plan.

Runs after authentication (it needs `ctx.principal.client_id`) at Kong's rate-limiting
priority, 910. Counting is `limits.aio` in a shared `CounterStore`: each hit is one
atomic operation (Lua on Redis), never a read-then-write, so N workers on one Redis
admit exactly the limit. Keys are consumer + API + window, the same on every node.

Every governed response carries the IETF httpapi `RateLimit-Policy` and `RateLimit`
headers (draft-ietf-httpapi-ratelimit-headers, structured-field form), written here
for all limiting policies of the chain — spike arrest and quota add their items to
the request's state. A refused request gets 429 problem+json with `Retry-After`.

When the store is down the consumer's plan decides (`on_store_failure`): `open`
(the default) admits without headers, `closed` answers 503 `limits_unavailable`.
Open is the default because a limit store outage should not become an API outage
(Kong's `fault_tolerant` defaults to true); the systems behind keep their own
breakers. Plans that guard money-moving or costly APIs can choose `closed`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable
from typing import Annotated, ClassVar, Protocol

import msgspec
from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.util import WindowStats
from litestar.datastructures import MutableScopeHeaders
from msgspec import Meta

from contracts.problems import ProblemError
from policies.base import Policy, RequestContext
from policies.plans import Consumer, Plan, PlanCache, PlanLookup, ResolvedPlan, Strategy
from policies.stores import CounterStore, StoreUnavailable

__all__ = [
    "ANONYMOUS",
    "LimitState",
    "PlanPolicy",
    "RateLimit",
    "RateLimitConfig",
    "UsageMeterProtocol",
    "add_limit_states",
    "consumer_of",
    "hit_limits",
    "rate_limited",
    "store_unavailable",
]

ANONYMOUS = "anonymous"
_STATE_KEY = "rate_limits"


class LimitState(msgspec.Struct, frozen=True):
    """One limit as the caller sees it after this request: for the headers and the 429."""

    name: str
    quota: int
    window: int
    remaining: int
    reset: int
    """Seconds until the window frees room (moving windows) or restarts (fixed ones)."""


class RateLimitConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The plans table one API's limits are resolved from, per consumer, at request time."""

    api: Annotated[str, Meta(description="The API (route group) the limits count for.")]
    plans: dict[str, Plan]
    default_plan: str
    consumers: dict[str, Consumer] = {}


def consumer_of(ctx: RequestContext) -> str:
    return ctx.principal.client_id if ctx.principal is not None else ANONYMOUS


def add_limit_states(ctx: RequestContext, states: list[LimitState]) -> None:
    existing = ctx.state.get(_STATE_KEY)
    if isinstance(existing, list):
        existing.extend(states)
    else:
        ctx.state[_STATE_KEY] = list(states)


def rate_limited(exhausted: list[LimitState], *, code: str, detail: str) -> ProblemError:
    """The 429 every limiting policy answers with; waiting `Retry-After` frees room in each exhausted limit."""
    retry_after = max(1, max(s.reset for s in exhausted))
    return ProblemError(429, "rate-limited", "Too many requests", detail, code=code,
                        headers={"Retry-After": str(retry_after)})


def store_unavailable() -> ProblemError:
    """The documented answer of a fail-closed limit when its store is down."""
    return ProblemError(503, "limits-unavailable", "Unavailable",
                        "Rate limits cannot be checked right now and this plan refuses unchecked traffic.",
                        code="limits_unavailable", headers={"Retry-After": "1"})


def reset_in(reset_time: float, now: float) -> int:
    return max(0, math.ceil(reset_time - now))


async def hit_limits(store: CounterStore, strategy: Strategy, items: list[tuple[str, RateLimitItem]],
                     ids: tuple[str, ...], *, also: Awaitable[object] | None = None,
                     ) -> list[tuple[LimitState, bool]]:
    """Hit every item at once, then read their windows: two store round trips whatever the count.

    Each hit is atomic on its own; hits of one request are concurrent, so a refusal by one
    window may still spend a unit of another (as in Kong). `also` rides along with the hits.
    """
    limiter = store.limiter(strategy)

    async def count() -> tuple[list[object], list[WindowStats]]:
        jobs: list[Awaitable[object]] = [limiter.hit(item, *ids) for _, item in items]
        if also is not None:
            jobs.append(also)
        admitted = await asyncio.gather(*jobs)
        stats = await asyncio.gather(*(limiter.get_window_stats(item, *ids) for _, item in items))
        return admitted, list(stats)

    try:
        admitted, stats = await store.guarded(count)
    finally:
        if also is not None and asyncio.iscoroutine(also):
            also.close()  # never awaited when the store was skipped; silence the warning
    now = time.time()
    return [(LimitState(name, item.amount, item.get_expiry(), stat.remaining, reset_in(stat.reset_time, now)),
             bool(ok)) for (name, item), ok, stat in zip(items, admitted, stats, strict=False)]


class PlanPolicy(Policy[RateLimitConfig]):
    """What the rate-limit and quota policies share: a counter store and each consumer's resolved plan."""

    def __init__(self, config: RateLimitConfig, store: CounterStore, meter: UsageMeterProtocol | None = None,
                 subscriptions: PlanLookup | None = None) -> None:
        super().__init__(config)
        self._plans = PlanCache(config.plans, config.consumers, config.default_plan, config.api, subscriptions)
        self.store = store
        self.meter = meter

    def resolve(self, consumer: str) -> ResolvedPlan:
        """The consumer's limits on this API (declared, subscribed or default), re-read each minute."""
        return self._plans.get(consumer)


class RateLimit(PlanPolicy):
    name: ClassVar[str] = "rate_limit"
    order: ClassVar[int] = 910

    async def on_request(self, ctx: RequestContext) -> None:
        consumer = consumer_of(ctx)
        plan = self.resolve(consumer)
        items: list[tuple[str, RateLimitItem]] = []
        if plan.allowance.per_second is not None:
            items.append(("second", RateLimitItemPerSecond(plan.allowance.per_second)))
        if plan.allowance.per_minute is not None:
            items.append(("minute", RateLimitItemPerMinute(plan.allowance.per_minute)))
        try:
            results = await hit_limits(self.store, plan.strategy, items, ("rl", consumer, self.config.api),
                                       also=self.meter.count(consumer, self.config.api) if self.meter else None)
        except StoreUnavailable:
            if plan.on_store_failure == "closed":
                raise store_unavailable() from None
            return
        add_limit_states(ctx, [state for state, _ in results])
        exhausted = [state for state, admitted in results if not admitted]
        if exhausted:
            if self.meter is not None:
                await self.meter.reject(consumer, self.config.api)
            raise rate_limited(exhausted, code="rate_limited", detail=(
                f"Plan {plan.plan!r} allows {', '.join(f'{s.quota} per {s.name}' for s in exhausted)} "
                f"on {self.config.api}; retry after the window frees room."))

    async def on_response(self, ctx: RequestContext, status: int, headers: MutableScopeHeaders) -> None:
        states = ctx.state.get(_STATE_KEY)
        if not isinstance(states, list) or not states:
            return
        headers.add("RateLimit-Policy", ", ".join(f'"{s.name}";q={s.quota};w={s.window}' for s in states))
        headers.add("RateLimit", ", ".join(f'"{s.name}";r={max(0, s.remaining)};t={s.reset}' for s in states))


class UsageMeterProtocol(Protocol):
    """What the limiting policies need from the usage meter (`policies.quota.UsageMeter`)."""

    async def count(self, consumer: str, api: str) -> None: ...

    async def reject(self, consumer: str, api: str) -> None: ...
