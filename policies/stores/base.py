"""The counter-store interface every rate-limit and quota policy counts through.

Counting follows the `limits` library's strategies and keys; a request's limits and
usage counters are one `hit_many` call (see `policies.stores.batch`). A store adds what
a gateway needs around them: one namespace per deployment, one limiter per strategy
(for reading windows, and for counting in memory), and outage handling. When the backing service fails, the
store raises `StoreUnavailable` — fast: after a failure it does not try again for
`probe_interval` seconds, so an outage costs no connect timeout per request — and
logs the degradation once per outage, and the recovery once, instead of per request.
Each policy decides from its config whether an outage admits or refuses.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from policies.plans import Strategy
from policies.stores.batch import HitResult, RequestHits

__all__ = ["CounterStore", "StoreUnavailable"]

log = logging.getLogger("psconnect.policies.store")
T = TypeVar("T")

_LIMITERS: dict[Strategy, type[RateLimiter]] = {
    "fixed-window": FixedWindowRateLimiter,
    "moving-window": MovingWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
}


class StoreUnavailable(Exception):
    """The counter store cannot be reached; the caller applies its failure mode."""


class CounterStore(ABC):
    """Atomic counters shared by every node that uses the same backing service and namespace."""

    name: ClassVar[str]
    errors: ClassVar[tuple[type[BaseException], ...]] = ()
    """Exceptions that mean "the store is down" (not a bug of ours)."""

    def __init__(self, *, namespace: str, probe_interval: float = 0.5) -> None:
        self.namespace = namespace
        self.probe_interval = probe_interval
        self._limiters: dict[Strategy, RateLimiter] = {}
        self._down_since: float | None = None
        self._retry_at = 0.0

    @property
    @abstractmethod
    def storage(self) -> MemoryStorage | RedisStorage:
        """The `limits` storage the limiters count in."""

    @property
    def healthy(self) -> bool:
        return self._down_since is None

    def limiter(self, strategy: Strategy) -> RateLimiter:
        limiter = self._limiters.get(strategy)
        if limiter is None:
            limiter = self._limiters[strategy] = _LIMITERS[strategy](self.storage)
        return limiter

    async def guarded(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run one store operation; `StoreUnavailable` if the store is (or just went) down."""
        if self._down_since is not None and time.monotonic() < self._retry_at:
            raise StoreUnavailable(f"{self.name} counter store unavailable")
        try:
            result = await operation()
        except self.errors as exc:
            self._mark_down(exc)
            raise StoreUnavailable(f"{self.name} counter store unavailable: {exc}") from exc
        if self._down_since is not None:
            outage = time.monotonic() - self._down_since
            self._down_since = None
            log.warning("limit store recovered", extra={"fields": {
                "event": "limit_store_recovered", "store": self.name, "outage_seconds": round(outage, 3)}})
        return result

    def _mark_down(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._retry_at = now + self.probe_interval
        if self._down_since is None:
            self._down_since = now
            log.error("limit store unavailable; limits follow each policy's on_store_failure until it returns",
                      extra={"fields": {"event": "limit_store_down", "store": self.name, "error": repr(exc)}})

    async def hit_many(self, hits: RequestHits) -> HitResult:
        """All of one request's limits and counters in one store operation (see `policies.stores.batch`)."""
        return await self.guarded(lambda: self._hit_many(hits))

    @abstractmethod
    async def _hit_many(self, hits: RequestHits) -> HitResult: ...

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add to a plain counter (usage statistics) that expires `expiry` seconds after creation."""
        return await self.guarded(lambda: self.storage.incr(self._key(key), expiry, amount))

    async def get(self, key: str) -> int:
        return await self.guarded(lambda: self.storage.get(self._key(key)))

    def _key(self, key: str) -> str:
        return key

    async def ping(self) -> bool:
        """True when the store answers; never raises."""
        try:
            return bool(await self.guarded(self.storage.check))
        except StoreUnavailable:
            return False

    @abstractmethod
    async def close(self) -> None:
        """Release connections; the store must not be used afterwards."""

    def describe(self) -> dict[str, Any]:
        return {"store": self.name, "namespace": self.namespace, "healthy": self.healthy}
