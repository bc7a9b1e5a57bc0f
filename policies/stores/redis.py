"""Counters in Redis, shared by every worker and host that points at the same server and namespace.

Through `limits.aio` with redis-py (`implementation="redispy"`; the default driver
would be coredis). Keys are `<namespace>:LIMITER/<consumer>/<api>/…`, identical on
every node. redis-py's own connection retries are switched off: a down Redis must
fail in one attempt so the policy's failure mode applies within the request, and
the store's probe interval paces reconnection attempts instead.
"""

from __future__ import annotations

from typing import Any, ClassVar

from limits.aio.storage import RedisStorage
from limits.errors import StorageError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from policies.stores.base import CounterStore

__all__ = ["RedisCounterStore"]


class RedisCounterStore(CounterStore):
    name: ClassVar[str] = "redis"
    errors: ClassVar[tuple[type[BaseException], ...]] = (StorageError, RedisError, OSError, TimeoutError)

    def __init__(self, *, url: str | None = None, namespace: str = "psconnect", probe_interval: float = 0.5,
                 connect_timeout: float = 2.0, timeout: float = 2.0, max_connections: int = 200) -> None:
        super().__init__(namespace=namespace, probe_interval=probe_interval)
        if not url:
            raise ValueError("the redis counter store needs a URL (REDIS_URL)")
        uri = url if url.startswith("async+") else f"async+{url}"
        options: dict[str, object] = {
            "socket_connect_timeout": connect_timeout, "socket_timeout": timeout,
            "retry": Retry(NoBackoff(), 0), "max_connections": max_connections,
        }
        self._storage = RedisStorage(uri, wrap_exceptions=True, implementation="redispy",
                                     key_prefix=namespace, **options)  # type: ignore[arg-type]
        self.url = url

    @property
    def storage(self) -> RedisStorage:
        return self._storage

    async def close(self) -> None:
        client: Any = getattr(self._storage.bridge, "storage", None)  # redis.asyncio.Redis (redispy bridge)
        if client is not None:
            await client.aclose()
