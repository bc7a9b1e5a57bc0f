"""The idempotency record store: one interface, memory and Redis behind it.

A record moves through two states: `in_flight` while the first request runs (so a
concurrent duplicate is told 409, not run twice) and `done` with the response to
replay. Claiming is atomic in every implementation — a check-then-set would let two
duplicates both run, which is the one thing the store exists to prevent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import msgspec

__all__ = ["IdempotencyStore", "Record", "StoreUnavailable", "StoredResponse"]


class StoredResponse(msgspec.Struct, frozen=True, kw_only=True):
    """What a replay answers: the first response's status, the headers that matter, the body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Record(msgspec.Struct, frozen=True, kw_only=True):
    fingerprint: str
    """Hash of method, path, query and body: the same key with another request is a misuse."""
    owner: str
    """Random token of the request that claimed the key; only it may complete or release it."""
    state: Literal["in_flight", "done"] = "in_flight"
    response: StoredResponse | None = None


class StoreUnavailable(Exception):
    """The backing store cannot be reached; the policy decides to fail open or closed."""


class IdempotencyStore(ABC):
    """Atomic claim / complete / release of idempotency records, each with its own expiry."""

    @abstractmethod
    async def claim(self, key: str, record: Record, lock_seconds: float) -> Record | None:
        """Store `record` (in flight) unless the key exists; None when claimed, else the existing record."""

    @abstractmethod
    async def complete(self, key: str, record: Record, ttl_seconds: float) -> bool:
        """Replace the caller's in-flight record by the finished one; False if it no longer owns the key."""

    @abstractmethod
    async def release(self, key: str, owner: str) -> None:
        """Forget an in-flight record (the request failed), so a retry with the same key runs again."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections."""
