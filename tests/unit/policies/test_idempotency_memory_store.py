"""The embedded idempotency store's own guarantees: expiry, ownership, a bounded size."""

from __future__ import annotations

import msgspec
import pytest

from policies.idempotency import IdempotencyConfig
from policies.idempotency_stores import MemoryIdempotencyStore, Record, StoredResponse


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(owner: str, state: str = "in_flight") -> Record:
    response = StoredResponse(status=201, headers=[], body=b"{}") if state == "done" else None
    return msgspec.convert({"fingerprint": "f", "owner": owner, "state": state, "response": response}, Record,
                           from_attributes=True)


class TestMemoryStore:
    async def test_in_flight_lock_expires(self) -> None:
        clock = Clock()
        store = MemoryIdempotencyStore(clock=clock)
        assert await store.claim("k", record("a"), lock_seconds=5) is None
        assert (await store.claim("k", record("b"), lock_seconds=5)) == record("a")
        clock.now += 6
        assert await store.claim("k", record("b"), lock_seconds=5) is None

    async def test_only_the_owner_completes_or_releases(self) -> None:
        store = MemoryIdempotencyStore()
        await store.claim("k", record("a"), lock_seconds=5)
        assert not await store.complete("k", record("b", "done"), ttl_seconds=60)
        await store.release("k", "b")
        assert await store.claim("k", record("c"), lock_seconds=5) == record("a")
        assert await store.complete("k", record("a", "done"), ttl_seconds=60)
        await store.release("k", "a")  # a finished record is never released
        assert (await store.claim("k", record("c"), lock_seconds=5)) == record("a", "done")

    async def test_size_is_bounded(self) -> None:
        store = MemoryIdempotencyStore(max_records=100)
        for i in range(1000):
            await store.claim(f"k{i}", record("a"), lock_seconds=60)
        assert len(store._records) <= 100
        assert await store.claim("k999", record("b"), lock_seconds=60) == record("a")  # newest kept


def test_config_is_checked_at_load() -> None:
    with pytest.raises(msgspec.ValidationError, match="operations"):
        msgspec.convert({"operations": {"provisioning.startRun": "sometimes"}}, IdempotencyConfig)
