"""Counter stores for rate limits and quotas: one interface, memory and Redis behind it.

Pick one by name (`build_store("redis", url=…)`); policies only see `CounterStore`.
"""

from __future__ import annotations

from policies.stores.base import CounterStore, StoreUnavailable
from policies.stores.memory import MemoryCounterStore
from policies.stores.redis import RedisCounterStore
from policies.stores.registry import STORES, build_store

__all__ = ["STORES", "CounterStore", "MemoryCounterStore", "RedisCounterStore", "StoreUnavailable", "build_store"]
