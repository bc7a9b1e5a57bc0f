"""One request's counter work as one store operation: its limits, tested together, and its usage counters.

A governed request used to cost one store call per limit hit, per window read and per
usage counter — five Redis round trips for a plan with a per-second and a per-minute
limit. `CounterStore.hit_many` does the same work in one: on Redis, one Lua script
(`hits.lua`) that tests every limit, then spends all of them or none — so a request
refused by its per-minute limit no longer uses up its per-second one — and reports each
window as `limits` would (`WindowStats`). The keys and the arithmetic are those of the
`limits` strategies, so reading the counters through `limits` (the portal's quota
figures) sees the same numbers.
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec
from limits import RateLimitItem

from policies.plans import Strategy

__all__ = ["CounterHit", "HitResult", "LimitHit", "RequestHits", "stats_from_window"]

CounterKind = Literal["count", "count_refused"]


class LimitHit(msgspec.Struct, frozen=True):
    """Spend `cost` of `item` for `ids` with `strategy` — unless another limit of the request refuses."""

    strategy: Strategy
    item: RateLimitItem
    ids: tuple[str, ...]
    cost: int = 1
    key: str = ""
    """`limits`' key for `item` and `ids`; computed once, as policies reuse their hits request after request."""

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "key", self.item.key_for(*self.ids))


class CounterHit(msgspec.Struct, frozen=True):
    """A plain statistics counter: `count` always adds, `count_refused` only when a limit refused."""

    kind: CounterKind
    key: str
    expiry: int


class RequestHits(msgspec.Struct, frozen=True):
    limits: tuple[LimitHit, ...]
    counters: tuple[CounterHit, ...] = ()


class HitResult(msgspec.Struct, frozen=True):
    """The outcome for the request, and each limit's window after it, in request order."""

    admitted: bool
    windows: tuple[tuple[int, float], ...]
    """(remaining, reset time as epoch seconds) per limit, as `limits`' `get_window_stats`."""


def stats_from_window(hit: LimitHit, values: tuple[float, float, float, float], now: float) -> tuple[int, float]:
    """(remaining, reset epoch) from the raw window the script returns — `limits`' own formulas."""
    item, expiry = hit.item, hit.item.get_expiry()
    if hit.strategy == "sliding-window-counter":
        previous, previous_ttl, current, current_ttl = values[0], values[1] / 1000, values[2], values[3] / 1000
        weighted = previous * previous_ttl / expiry + current
        remaining = max(0, item.amount - math.floor(weighted))
        if not (previous or current):
            return remaining, now
        previous_reset = previous_ttl % (expiry / previous) if previous else math.inf
        current_reset = current_ttl % expiry if current else math.inf
        return remaining, now + min(previous_reset, current_reset)
    if hit.strategy == "fixed-window":
        count, ttl_ms = values[0], values[1]
        return max(0, item.amount - int(count)), now + max(0.0, ttl_ms / 1000)
    oldest, entries = values[0], values[1]  # moving window
    return item.amount - int(entries), float(oldest) + expiry
