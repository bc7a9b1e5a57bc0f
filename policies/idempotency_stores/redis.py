"""Redis idempotency store for distributed mode: every worker and host sees one record per key.

Claim is `SET NX PX` (atomic on the server); complete and release are Lua scripts
that act only when the caller still owns the key, so a request whose in-flight lock
expired cannot overwrite the record of the request that took over.
"""

from __future__ import annotations

from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from policies.idempotency_stores.base import IdempotencyStore, Record, StoreUnavailable

__all__ = ["RedisIdempotencyStore"]

_OWNER_IS = "local v = redis.call('GET', KEYS[1]) if v and cjson.decode(v)['owner'] == ARGV[1] then "
_COMPLETE = _OWNER_IS + "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0"
_RELEASE = _OWNER_IS + "if cjson.decode(v)['state'] == 'in_flight' then redis.call('DEL', KEYS[1]) end end return 0"


class RedisIdempotencyStore(IdempotencyStore):
    def __init__(self, url: str, prefix: str = "psconnect:idem:") -> None:
        self._redis: aioredis.Redis = aioredis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._prefix = prefix
        self._complete: Any = self._redis.register_script(_COMPLETE)
        self._release: Any = self._redis.register_script(_RELEASE)

    async def claim(self, key: str, record: Record, lock_seconds: float) -> Record | None:
        k = self._prefix + key
        try:
            for _ in range(3):  # the holder may expire between SET NX and GET: claim again
                if await self._redis.set(k, msgspec.json.encode(record), nx=True, px=_ms(lock_seconds)):
                    return None
                raw = await self._redis.get(k)
                if raw is not None:
                    return msgspec.json.decode(raw, type=Record)
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        raise StoreUnavailable(f"could not claim idempotency key {key!r}")

    async def complete(self, key: str, record: Record, ttl_seconds: float) -> bool:
        try:
            done = await self._complete(keys=[self._prefix + key],
                                        args=[record.owner, msgspec.json.encode(record), _ms(ttl_seconds)])
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return bool(done)

    async def release(self, key: str, owner: str) -> None:
        try:
            await self._release(keys=[self._prefix + key], args=[owner])
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def aclose(self) -> None:
        await self._redis.aclose()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
