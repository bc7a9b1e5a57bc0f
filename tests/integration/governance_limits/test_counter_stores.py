"""One suite over every counter store: exact under concurrency across two instances, namespaces apart."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from limits import RateLimitItemPerMinute

from policies.plans import Strategy
from policies.stores import STORES, CounterStore, MemoryCounterStore, build_store

REDIS_URL = "redis://127.0.0.1:6379/0"
STRATEGIES: tuple[Strategy, ...] = ("fixed-window", "moving-window", "sliding-window-counter")


@pytest.fixture(params=sorted(STORES))
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[CounterStore, CounterStore, Callable[[], str]]]:
    """Two store instances that should share counts (two nodes), and a fresh-namespace factory."""
    namespace = f"psconnect-test-{uuid.uuid4().hex[:12]}"
    if request.param == "memory":
        one = build_store("memory", namespace=namespace)
        stores = (one, one)  # memory is one process's: both "nodes" are the same instance
    else:
        stores = (build_store("redis", url=REDIS_URL, namespace=namespace),
                  build_store("redis", url=REDIS_URL, namespace=namespace))
    yield stores[0], stores[1], lambda: f"psconnect-test-{uuid.uuid4().hex[:12]}"
    for store in {id(s): s for s in stores}.values():
        await store.close()


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_concurrent_hits_admit_exactly_the_limit(
        pair: tuple[CounterStore, CounterStore, Callable[[], str]], strategy: Strategy) -> None:
    a, b, _ = pair
    item = RateLimitItemPerMinute(50)
    hits = [(a if i % 2 else b).limiter(strategy).hit(item, "consumer", "system.crm") for i in range(200)]
    admitted = await asyncio.gather(*hits)
    assert sum(admitted) == 50
    stats = await a.limiter(strategy).get_window_stats(item, "consumer", "system.crm")
    assert stats.remaining == 0


async def test_plain_counters_are_shared_and_namespaced(
        pair: tuple[CounterStore, CounterStore, Callable[[], str]]) -> None:
    a, b, fresh = pair
    await asyncio.gather(*(a.incr("usage/x", 60) for _ in range(7)), *(b.incr("usage/x", 60) for _ in range(3)))
    assert await a.get("usage/x") == 10
    other = (MemoryCounterStore(namespace=fresh()) if a.name == "memory"
             else build_store("redis", url=REDIS_URL, namespace=fresh()))
    assert await other.get("usage/x") == 0
    await other.close()


def test_unknown_store_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown counter store"):
        build_store("memcached")
