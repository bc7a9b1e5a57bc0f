"""In-process idempotency store for embedded mode: one worker, no services."""

from __future__ import annotations

import time
from collections.abc import Callable

from policies.idempotency_stores.base import IdempotencyStore, Record

__all__ = ["MemoryIdempotencyStore"]


class MemoryIdempotencyStore(IdempotencyStore):
    """Records in a dict with expiry; bounded in count so a key flood cannot exhaust memory.

    Claims are atomic because nothing awaits between the lookup and the insert.
    """

    def __init__(self, max_records: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._records: dict[str, tuple[float, Record]] = {}
        self._max = max_records
        self._clock = clock

    def _live(self, key: str) -> Record | None:
        hit = self._records.get(key)
        if hit is None:
            return None
        if hit[0] <= self._clock():
            del self._records[key]
            return None
        return hit[1]

    def _evict(self) -> None:
        now = self._clock()
        for key in [k for k, (exp, _) in self._records.items() if exp <= now]:
            del self._records[key]
        while len(self._records) >= self._max:  # oldest first: dicts keep insertion order
            del self._records[next(iter(self._records))]

    async def claim(self, key: str, record: Record, lock_seconds: float) -> Record | None:
        existing = self._live(key)
        if existing is not None:
            return existing
        if len(self._records) >= self._max:
            self._evict()
        self._records[key] = (self._clock() + lock_seconds, record)
        return None

    async def complete(self, key: str, record: Record, ttl_seconds: float) -> bool:
        current = self._live(key)
        if current is None or current.owner != record.owner:
            return False
        self._records[key] = (self._clock() + ttl_seconds, record)
        return True

    async def release(self, key: str, owner: str) -> None:
        current = self._live(key)
        if current is not None and current.owner == owner and current.state == "in_flight":
            del self._records[key]

    async def aclose(self) -> None:
        self._records.clear()
