"""Rate limit: per consumer, per API, per second and per minute, by the consumer's plan.

Runs after authentication (it needs `ctx.principal.client_id`) at Kong's rate-limiting
priority, 910. Counting uses the `limits` strategies in a shared `CounterStore`: a
request's limits are tested together and spent all or none, atomically (`limits.aio`
in memory, one Lua script with `limits`' keys and arithmetic on Redis), never a
read-then-write, so N workers on one Redis admit what one process would. Keys are consumer +
API + window, the same on every node.

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

import math
import time
from collections.abc import Sequence
from typing import Annotated, ClassVar, Protocol

import msgspec
from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from litestar.datastructures import MutableScopeHeaders
from msgspec import Meta

from contracts.problems import ProblemError
from policies.base import Policy, RequestContext
from policies.plans import Consumer, FailureMode, Plan, PlanCache, PlanLookup, ResolvedPlan
from policies.registry import PolicyBuild, PolicyFactory
from policies.stores import CounterStore, StoreUnavailable
from policies.stores.batch import CounterHit, CounterKind, LimitHit, RequestHits

__all__ = [
    "ANONYMOUS",
    "FACTORY",
    "LimitState",
    "PlanPolicy",
    "RateLimit",
    "RateLimitConfig",
    "UsageMeterProtocol",
    "add_limit_states",
    "consumer_of",
    "exhausted_of",
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


async def hit_limits(store: CounterStore, hits: Sequence[tuple[str, LimitHit]],
                     counters: tuple[CounterHit, ...] = (), *, on_store_failure: FailureMode = "open",
                     ) -> tuple[bool, list[LimitState]] | None:
    """Test every limit of the request and spend all or none, with its usage counters: one store operation.

    Returns whether the request is admitted and each limit's state after it; None when the store is
    down and `on_store_failure` admits unchecked (`closed` answers 503 instead).
    """
    try:
        result = await store.hit_many(RequestHits(tuple(hit for _, hit in hits), counters))
    except StoreUnavailable:
        if on_store_failure == "closed":
            raise store_unavailable() from None
        return None
    now = time.time()
    states = [LimitState(name, hit.item.amount, hit.item.get_expiry(), remaining, reset_in(reset, now))
              for (name, hit), (remaining, reset) in zip(hits, result.windows, strict=True)]
    return result.admitted, states


def exhausted_of(states: list[LimitState]) -> list[LimitState]:
    """The limits that refused a request (no room for one more), or all of them if rounding hides which."""
    return [s for s in states if s.remaining < 1] or states


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

    def __init__(self, config: RateLimitConfig, store: CounterStore, meter: UsageMeterProtocol | None = None,
                 subscriptions: PlanLookup | None = None) -> None:
        super().__init__(config, store, meter, subscriptions)
        self._hits: dict[str, tuple[ResolvedPlan, list[tuple[str, LimitHit]]]] = {}

    def hits(self, consumer: str, plan: ResolvedPlan) -> list[tuple[str, LimitHit]]:
        """The consumer's limit hits, built once per plan (a changed plan builds them again)."""
        known = self._hits.get(consumer)
        if known is not None and known[0] == plan:
            return known[1]
        ids = ("rl", consumer, self.config.api)
        hits: list[tuple[str, LimitHit]] = []
        if plan.allowance.per_second is not None:
            hits.append(("second", LimitHit(plan.strategy, RateLimitItemPerSecond(plan.allowance.per_second), ids)))
        if plan.allowance.per_minute is not None:
            hits.append(("minute", LimitHit(plan.strategy, RateLimitItemPerMinute(plan.allowance.per_minute), ids)))
        self._hits[consumer] = (plan, hits)
        return hits

    async def on_request(self, ctx: RequestContext) -> None:
        consumer = consumer_of(ctx)
        plan = self.resolve(consumer)
        hits = self.hits(consumer, plan)
        counters = self.meter.counters(consumer, self.config.api) if self.meter else ()
        outcome = await hit_limits(self.store, hits, counters, on_store_failure=plan.on_store_failure)
        if outcome is None:
            return
        admitted, states = outcome
        add_limit_states(ctx, states)
        if not admitted:
            exhausted = exhausted_of(states)
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

    def counters(self, consumer: str, api: str, *, requests: CounterKind | None = "count") -> tuple[CounterHit, ...]:
        """The usage counters to add with a request's limits (see `UsageMeter.counters`)."""
        ...


def _build(b: PolicyBuild) -> RateLimit:
    config = RateLimitConfig(api=b.api, plans=b.bindings.plans, default_plan=b.bindings.default_plan,
                             consumers=b.bindings.consumers)
    return RateLimit(config, b.services.counters, b.services.meter, b.services.subscriptions)


FACTORY = PolicyFactory(name="rate_limit", build=_build)
"""Registered in the entry-point group psconnect.policies; `plans`, `default_plan` and `consumers` configure it."""
