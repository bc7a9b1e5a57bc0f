"""The failed-authentication throttle on each counter store: parallel guesses cannot outrun it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from policies.failure_throttle import FailureThrottle
from policies.stores import CounterStore, build_store

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CounterStore]:
    counters = build_store(request.param, url=REDIS_URL, namespace=f"psconnect-test-{uuid.uuid4().hex[:12]}")
    yield counters
    await counters.close()


async def test_parallel_attempts_beyond_the_limit_are_refused_and_successes_give_their_place_back(
        store: CounterStore) -> None:
    throttle = FailureThrottle(store, per_identity=5, per_address=100)
    waits = await asyncio.gather(*(throttle.reserve("token", "app-1", "10.0.0.1") for _ in range(20)))
    assert waits.count(None) == 5 and all(w is not None and 1 <= w <= 60 for w in waits if w is not None)
    assert await throttle.reserve("token", "app-2", "10.0.0.1") is None  # the address is far from its limit
    await throttle.release("token", "app-2", "10.0.0.1")  # app-2 authenticated: nothing of it stays counted
    assert all([await throttle.reserve("token", "app-2", "10.0.0.1") is None for _ in range(5)])
    assert await throttle.reserve("token", "app-2", "10.0.0.1") is not None


async def test_the_address_limit_covers_many_identities(store: CounterStore) -> None:
    throttle = FailureThrottle(store, per_identity=5, per_address=8)
    outcomes = [await throttle.reserve("signin", f"user{i}@example.com", "10.0.0.2") for i in range(10)]
    assert outcomes[:8] == [None] * 8 and None not in outcomes[8:]
    assert await throttle.reserve("signin", "user0@example.com", "10.0.0.3") is None  # another address


def test_the_address_behind_a_trusted_proxy_is_the_forwarded_one(store: CounterStore) -> None:
    throttle = FailureThrottle(store, trusted_proxies=("10.1.0.0/16",))
    assert throttle.address("10.1.2.3", "203.0.113.9") == "203.0.113.9"
    assert throttle.address("198.51.100.7", "203.0.113.9") == "198.51.100.7"  # not a trusted proxy: its own address
