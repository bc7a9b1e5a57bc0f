"""Counters in this process's memory: embedded mode, one worker, nothing to run beside it."""

from __future__ import annotations

from typing import ClassVar

from limits.aio.storage import MemoryStorage

from policies.stores.base import CounterStore
from policies.stores.batch import HitResult, RequestHits

__all__ = ["MemoryCounterStore"]


class MemoryCounterStore(CounterStore):
    """Exact within one process; several workers would each count alone (use Redis for those)."""

    name: ClassVar[str] = "memory"

    def __init__(self, *, namespace: str = "psconnect", url: str | None = None, probe_interval: float = 0.5) -> None:
        super().__init__(namespace=namespace, probe_interval=probe_interval)
        self._storage = MemoryStorage()

    @property
    def storage(self) -> MemoryStorage:
        return self._storage

    def _key(self, key: str) -> str:
        return f"{self.namespace}:{key}"

    async def _hit_many(self, hits: RequestHits) -> HitResult:
        """Through `limits`' own limiters: test all, then spend all. One event loop, so no other request runs
        between the tests and the hits unless the storage yields; each hit is still atomic, so a race can
        only refuse, never over-admit."""
        limiters = [(hit, self.limiter(hit.strategy)) for hit in hits.limits]
        admitted = True
        for hit, limiter in limiters:
            admitted = await limiter.test(hit.item, *hit.ids, cost=hit.cost) and admitted
        if admitted:
            for hit, limiter in limiters:
                admitted = await limiter.hit(hit.item, *hit.ids, cost=hit.cost) and admitted
        for counter in hits.counters:
            if counter.kind == "count" or not admitted:
                await self._storage.incr(self._key(counter.key), counter.expiry)
        windows = []
        for hit, limiter in limiters:
            stats = await limiter.get_window_stats(hit.item, *hit.ids)
            windows.append((stats.remaining, stats.reset_time))
        return HitResult(admitted, tuple(windows))

    async def close(self) -> None:
        await self._storage.reset()
