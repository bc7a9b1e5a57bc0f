"""Counter stores by name, so a setting (or a test parameter) picks the backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from policies.stores.base import CounterStore
from policies.stores.memory import MemoryCounterStore
from policies.stores.redis import RedisCounterStore

__all__ = ["STORES", "build_store"]

STORES: Final[dict[str, Callable[..., CounterStore]]] = {
    MemoryCounterStore.name: MemoryCounterStore,
    RedisCounterStore.name: RedisCounterStore,
}


def build_store(name: str, *, url: str | None = None, namespace: str = "psconnect",
                probe_interval: float = 0.5) -> CounterStore:
    """A store of kind `name` ("memory" or "redis"); `url` is required for Redis."""
    try:
        factory = STORES[name]
    except KeyError:
        raise ValueError(f"unknown counter store {name!r} (known: {sorted(STORES)})") from None
    return factory(url=url, namespace=namespace, probe_interval=probe_interval)
