"""One suite over every counter store: exact under concurrency across two instances, namespaces apart."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from limits import RateLimitItemPerHour, RateLimitItemPerMinute

from policies.plans import Strategy
from policies.stores import STORES, CounterStore, MemoryCounterStore, build_store
from policies.stores.batch import CounterHit, LimitHit, RequestHits

REDIS_URL = "redis://127.0.0.1:6379/0"
STRATEGIES: tuple[Strategy, ...] = ("fixed-window", "moving-window", "sliding-window-counter")


async def clear_of_a_minute_edge(margin: float = 5.0) -> None:
    """Windows are aligned to the clock: a test that crosses a minute (and so an hour) edge sees a fixed
    window reset and a sliding one weigh the last window in, so its exact counts would be off by chance."""
    to_edge = 60 - time.time() % 60
    if to_edge < margin:
        await asyncio.sleep(to_edge + 0.05)


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
    await clear_of_a_minute_edge()
    item = RateLimitItemPerMinute(50)
    hits = [(a if i % 2 else b).limiter(strategy).hit(item, "consumer", "system.crm") for i in range(200)]
    admitted = await asyncio.gather(*hits)
    assert sum(admitted) == 50
    stats = await a.limiter(strategy).get_window_stats(item, "consumer", "system.crm")
    assert stats.remaining == 0


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_a_requests_limits_batched_admit_exactly_the_limit(
        pair: tuple[CounterStore, CounterStore, Callable[[], str]], strategy: Strategy) -> None:
    """200 concurrent requests, each with a per-hour and a per-minute limit and a usage counter, in one
    store call each (on Redis many share one pipeline): exactly the tighter limit is admitted."""
    a, b, _ = pair
    await clear_of_a_minute_edge()
    hits = RequestHits((LimitHit(strategy, RateLimitItemPerHour(1000), ("c", "api")),
                        LimitHit(strategy, RateLimitItemPerMinute(50), ("c", "api"))),
                       (CounterHit("count", "usage/requests", 60), CounterHit("count_refused", "usage/rejected", 60)))
    results = await asyncio.gather(*((a if i % 2 else b).hit_many(hits) for i in range(200)))
    assert sum(r.admitted for r in results) == 50
    assert await a.get("usage/requests") == 200
    assert await a.get("usage/rejected") == 150
    # The windows read back through `limits` itself agree with what the batch reported and spent.
    for item, spent in ((RateLimitItemPerHour(1000), 50), (RateLimitItemPerMinute(50), 50)):
        stats = await a.limiter(strategy).get_window_stats(item, "c", "api")
        assert stats.remaining == item.amount - spent


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_a_refused_request_spends_none_of_its_limits(
        pair: tuple[CounterStore, CounterStore, Callable[[], str]], strategy: Strategy) -> None:
    a, _, _ = pair
    await clear_of_a_minute_edge()
    per_hour, per_minute = RateLimitItemPerHour(100), RateLimitItemPerMinute(3)
    hits = RequestHits((LimitHit(strategy, per_hour, ("c",)), LimitHit(strategy, per_minute, ("c",))))
    outcomes = [await a.hit_many(hits) for _ in range(5)]
    assert [o.admitted for o in outcomes] == [True, True, True, False, False]
    assert [o.windows[0][0] for o in outcomes] == [99, 98, 97, 97, 97]  # refusals left the per-hour room alone
    assert [o.windows[1][0] for o in outcomes] == [2, 1, 0, 0, 0]


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
