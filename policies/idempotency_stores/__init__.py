"""Idempotency record stores: memory (embedded) and Redis (distributed), picked by `create_store`."""

from __future__ import annotations

from policies.idempotency_stores.base import IdempotencyStore, Record, StoredResponse, StoreUnavailable
from policies.idempotency_stores.memory import MemoryIdempotencyStore
from policies.idempotency_stores.redis import RedisIdempotencyStore

__all__ = ["IdempotencyStore", "MemoryIdempotencyStore", "Record", "RedisIdempotencyStore", "StoreUnavailable",
           "StoredResponse", "create_store"]


def create_store(redis_url: str | None) -> IdempotencyStore:
    """Redis when a URL is configured (records shared by every worker), else memory."""
    return RedisIdempotencyStore(redis_url) if redis_url else MemoryIdempotencyStore()
