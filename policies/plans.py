"""Plans and consumers: how much traffic each caller may send, per API.

A consumer is an OAuth client id; it subscribes to a plan (bronze, silver, gold…)
and may carry its own overrides. Unknown consumers get the default plan, so a new
client is governed from its first call. The most specific setting wins, field by
field: consumer+API > consumer > plan+API > plan. Rates (per second / minute) use
the plan's strategy; quotas (per day / month) are calendar counters (UTC), so a
portal can say "resets at midnight" and mean it.

The spike arrest is not per consumer: it caps what all consumers together may send
to one API (Apigee's SpikeArrest), protecting the systems behind it — including
from our own month-end bursts.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = [
    "DEFAULT_STRATEGY",
    "Allowance",
    "Consumer",
    "FailureMode",
    "Plan",
    "PlanCache",
    "PlanLookup",
    "ResolvedPlan",
    "SpikeArrestConfig",
    "Strategy",
    "resolve_plan",
]

Strategy = Literal["fixed-window", "moving-window", "sliding-window-counter"]
"""`limits` strategies: fixed window is cheapest but admits bursts at a window edge; the
moving window is exact and costs one sorted-set entry per hit; the sliding-window
counter approximates the moving window with two counters."""

FailureMode = Literal["open", "closed"]
"""What to do when the counter store (Redis) is unreachable: admit (open) or refuse
with 503 (closed)."""

DEFAULT_STRATEGY: Strategy = "sliding-window-counter"
"""O(1) per hit in memory and Redis and no burst at window edges; plans that need exactness pick moving-window."""
PositiveInt = Annotated[int, Meta(gt=0)]


class Allowance(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Limits of one consumer on one API; unset fields inherit from the less specific level."""

    per_second: Annotated[PositiveInt | None, Meta(description="Requests per second (rate).")] = None
    per_minute: Annotated[PositiveInt | None, Meta(description="Requests per minute (rate).")] = None
    per_day: Annotated[PositiveInt | None, Meta(description="Requests per UTC day (quota).")] = None
    per_month: Annotated[PositiveInt | None, Meta(description="Requests per UTC calendar month (quota).")] = None

    def over(self, base: Allowance) -> Allowance:
        """This allowance laid over `base`: fields set here win."""
        return Allowance(
            per_second=self.per_second if self.per_second is not None else base.per_second,
            per_minute=self.per_minute if self.per_minute is not None else base.per_minute,
            per_day=self.per_day if self.per_day is not None else base.per_day,
            per_month=self.per_month if self.per_month is not None else base.per_month,
        )


class Plan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A subscription tier: the same limits for every consumer on it, per API if need be."""

    description: Annotated[str, Meta(description="What the plan is for; shown in the portal.")] = ""
    strategy: Annotated[Strategy, Meta(description="Rate-limit algorithm for per-second/minute limits.")] = \
        DEFAULT_STRATEGY
    on_store_failure: Annotated[FailureMode, Meta(description=(
        "When the limit store is down: `open` admits (availability first), `closed` answers 503."))] = "open"
    limits: Annotated[Allowance, Meta(description="Limits on every API.")] = Allowance()
    apis: Annotated[dict[str, Allowance], Meta(description="Per-API limits, laid over `limits`.")] = {}


class Consumer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One OAuth client: its plan and its own exceptions to it."""

    plan: Annotated[str, Meta(description="Name of a plan in `plans`.")]
    strategy: Strategy | None = None
    on_store_failure: FailureMode | None = None
    limits: Annotated[Allowance, Meta(description="Overrides on every API.")] = Allowance()
    apis: Annotated[dict[str, Allowance], Meta(description="Overrides per API.")] = {}
    ip_allow: Annotated[tuple[str, ...], Meta(description=(
        "CIDR blocks the client may call from; empty: any address."))] = ()

    def __post_init__(self) -> None:
        for block in self.ip_allow:
            try:
                ipaddress.ip_network(block, strict=False)
            except ValueError as exc:
                raise ValueError(f"ip_allow: {exc}") from None


class SpikeArrestConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A ceiling on all consumers together on one API, in a moving one-second window."""

    per_second: Annotated[PositiveInt, Meta(description="Requests per second, all consumers together.")]
    on_store_failure: Annotated[FailureMode, Meta(description="When the limit store is down.")] = "open"


class ResolvedPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What applies to one consumer on one API, after every override."""

    plan: str
    strategy: Strategy
    on_store_failure: FailureMode
    allowance: Allowance


def resolve_plan(plans: dict[str, Plan], consumers: dict[str, Consumer], default_plan: str,
                 client_id: str | None, api: str, subscribed: str | None = None) -> ResolvedPlan:
    """The limits of `client_id` on `api`.

    A consumer declared in the bindings gets its declared plan; otherwise the plan it subscribed to (the
    developer portal records it), when that plan exists; otherwise `default_plan`.
    """
    consumer = consumers.get(client_id) if client_id is not None else None
    name = consumer.plan if consumer is not None else (subscribed if subscribed in plans else default_plan)
    plan = plans[name]
    allowance = plan.apis.get(api, Allowance()).over(plan.limits)
    strategy, failure = plan.strategy, plan.on_store_failure
    if consumer is not None:
        allowance = consumer.apis.get(api, Allowance()).over(consumer.limits.over(allowance))
        strategy = consumer.strategy or strategy
        failure = consumer.on_store_failure or failure
    return ResolvedPlan(plan=name, strategy=strategy, on_store_failure=failure, allowance=allowance)


PlanLookup = Callable[[str], "str | None"]
"""client id -> the plan it subscribed to (the developer portal's record), or None."""


class PlanCache:
    """Resolved plans per consumer for one API, re-read after `ttl` seconds so an approved upgrade applies."""

    def __init__(self, plans: dict[str, Plan], consumers: dict[str, Consumer], default_plan: str, api: str,
                 subscriptions: PlanLookup | None = None, ttl: float = 60.0) -> None:
        self.plans, self.consumers, self.default_plan, self.api = plans, consumers, default_plan, api
        self.subscriptions = subscriptions
        self.ttl = ttl
        self._hits: dict[str, tuple[float, ResolvedPlan]] = {}

    def get(self, client_id: str) -> ResolvedPlan:
        now = time.monotonic()
        hit = self._hits.get(client_id)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        subscribed = None
        if self.subscriptions is not None and client_id not in self.consumers:
            subscribed = self.subscriptions(client_id)
        resolved = resolve_plan(self.plans, self.consumers, self.default_plan, client_id, self.api, subscribed)
        self._hits[client_id] = (now, resolved)
        return resolved
