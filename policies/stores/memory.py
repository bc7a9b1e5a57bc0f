"""Counters in this process's memory: embedded mode, one worker, nothing to run beside it."""

from __future__ import annotations

from typing import ClassVar

from limits.aio.storage import MemoryStorage

from policies.stores.base import CounterStore

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

    async def close(self) -> None:
        await self._storage.reset()
