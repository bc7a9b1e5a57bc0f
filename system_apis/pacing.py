"""A vendor's request budget, shared fairly between the consumers of the system APIs and our own processes.

Harvest allows 100 requests per 15 s for the whole firm (one token), and every consumer
of `/system/time/v1` spends from that one budget. Left alone, one consumer's burst spends
all of it and every other consumer — the billing run included — meets the vendor's 429
for the rest of the window. So each vendor client paces itself (`Pacer`) to the limit
the vendor publishes (declared beside its client, `VendorBudget`), and in each window:

- no one consumer sends more than `Shares.consumer` of the budget (40%), so a burst by
  one leaves room for the others;
- the consumers together send at most `1 - Shares.reserved` (80%): the rest is kept for
  the process APIs' service identity, which may send up to `Shares.service` (60%) —
  a month-end billing run is not starved by an integration's retry storm.

A request over its share is not queued for the rest of the window: it is answered at once
429 `rate-limited` with `Retry-After` = when its share frees room (the consumer sent too
much; 503 `vendor-unavailable` when the vendor's whole budget is spent, which is nobody's
excess alone), and the caller's own retry policy decides (the process steps wait
`Retry-After` at their level). When the vendor answers 429 anyway (another worker or
tool on the same token, or a separately limited endpoint such as Harvest's reports), that
call is answered alike, at once.

The consumer is the request's OAuth client (`bind_consumer`, a before-request hook of
the domain routers, puts it in a context variable for the vendor client below). Calls
outside any request (scripts, tests of a client alone) count against the vendor's whole
budget only. The pacer is per process: N gateway workers on one token each pace to the
whole budget, so the vendor's 429 (answered at once) remains the backstop there.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import msgspec

from foundation.identity import principal_of

if TYPE_CHECKING:
    from litestar import Request

__all__ = ["Pacer", "Shares", "VendorBudget", "bind_consumer", "consumer", "set_service_consumers"]

consumer: ContextVar[str | None] = ContextVar("psconnect_vendor_consumer", default=None)
"""The OAuth client a vendor call is made for; None outside a request."""

_service_consumers: frozenset[str] = frozenset({"psconnect-internal"})


def set_service_consumers(client_ids: frozenset[str]) -> None:
    """Which OAuth clients are the process APIs' service identity (the gateway's `service_client_id`)."""
    global _service_consumers
    _service_consumers = client_ids


async def bind_consumer(request: Request[Any, Any, Any]) -> None:
    """Before-request hook of every system API router: the calling client, for the vendor's pacer.

    A coroutine, so the variable is set in the handler's own context (Litestar runs a plain function
    hook in a worker thread, whose context the handler never sees)."""
    principal = principal_of(request)
    consumer.set(principal.client_id if principal is not None else None)


class VendorBudget(msgspec.Struct, frozen=True):
    """A vendor's published request limit for one account: `requests` per `seconds`."""

    requests: int
    seconds: float


class Shares(msgspec.Struct, frozen=True, kw_only=True):
    consumer: float = 0.4
    """The most one consumer may use of the vendor's budget in a window."""
    service: float = 0.6
    """The most the process APIs' service identity may use."""
    reserved: float = 0.2
    """Kept for the service identity: all other consumers together use at most the rest."""


class Pacer:
    """Sliding windows of our own sends to one vendor: in total, per consumer, and of all non-service consumers."""

    def __init__(self, budget: VendorBudget, shares: Shares | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self.shares = shares or Shares()
        self._clock = clock
        self._all: collections.deque[float] = collections.deque()
        self._others: collections.deque[float] = collections.deque()
        self._by_consumer: dict[str, collections.deque[float]] = {}
        n = budget.requests
        self.consumer_cap = max(1, math.floor(n * self.shares.consumer))
        self.service_cap = max(1, math.floor(n * self.shares.service))
        self.others_cap = max(1, n - math.ceil(n * self.shares.reserved))

    def take(self, who: str | None) -> tuple[float, bool]:
        """Record a send for `who` and return (0, False); or, recording nothing, how long until `who` may
        send and whether `who`'s own share (rather than the vendor's whole budget) is what is spent."""
        now = self._clock()
        horizon = now - self.budget.seconds
        for log in (self._all, self._others, *self._by_consumer.values()):
            while log and log[0] <= horizon:
                log.popleft()
        whole = self._all[0] - horizon if len(self._all) >= self.budget.requests else 0.0
        share = 0.0
        own: collections.deque[float] | None = None
        service = who in _service_consumers
        if who is not None:
            own = self._by_consumer.setdefault(who, collections.deque())
            if len(own) >= (self.service_cap if service else self.consumer_cap):
                share = own[0] - horizon
            if not service and len(self._others) >= self.others_cap:
                share = max(share, self._others[0] - horizon)
        if whole > 0 or share > 0:
            return max(whole, share), share >= whole
        self._all.append(now)
        if own is not None:
            own.append(now)
            if not service:
                self._others.append(now)
        if len(self._by_consumer) > 1000:  # forget consumers that sent nothing in the window
            self._by_consumer = {k: v for k, v in self._by_consumer.items() if v}
        return 0.0, False
