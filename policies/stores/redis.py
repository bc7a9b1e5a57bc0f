"""Counters in Redis, shared by every worker and host that points at the same server and namespace.

Through `limits.aio` with redis-py (`implementation="redispy"`; the default driver
would be coredis). Keys are `<namespace>:LIMITER/<consumer>/<api>/…`, identical on
every node. redis-py's own connection retries are switched off: a down Redis must
fail in one attempt so the policy's failure mode applies within the request, and
the store's probe interval paces reconnection attempts instead.

A request's limits and counters are one `hits.lua` call (`hit_many`), and the calls of
all requests that reach the store in the same event-loop turn leave in one pipeline:
under load, one write and one read carry dozens of requests' counting, which is most
of what the governed path used to spend per request. Each script still runs atomically
on Redis, so batching changes the cost, never the count.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any, ClassVar

from limits.aio.storage import RedisStorage
from limits.errors import StorageError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from policies.stores.base import CounterStore
from policies.stores.batch import HitResult, RequestHits, stats_from_window

__all__ = ["RedisCounterStore"]

_SCRIPT = Path(__file__).with_name("hits.lua").read_text()
_SHA = hashlib.sha1(_SCRIPT.encode()).hexdigest()
_Call = tuple[list[str], list[str | int | float], "asyncio.Future[Any]"]


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
        self._queue: list[_Call] = []

    @property
    def storage(self) -> RedisStorage:
        return self._storage

    async def close(self) -> None:
        client: Any = getattr(self._storage.bridge, "storage", None)  # redis.asyncio.Redis (redispy bridge)
        if client is not None:
            await client.aclose()

    def _client(self) -> Any:
        return self._storage.bridge.get_connection()  # type: ignore[attr-defined]

    async def _hit_many(self, hits: RequestHits) -> HitResult:
        prefixed = self._storage.bridge.prefixed_key
        keys: list[str] = []
        args: list[str | int | float] = []
        for hit in hits.limits:
            key = hit.key
            if hit.strategy == "sliding-window-counter":
                keys += [prefixed(f"{{{key}}}/-1"), prefixed(f"{{{key}}}")]
            else:
                keys.append(prefixed(key))
            kind = {"sliding-window-counter": "sliding", "fixed-window": "fixed", "moving-window": "moving"}
            args += [kind[hit.strategy], hit.item.amount, hit.item.get_expiry(), hit.cost,
                     2 if hit.strategy == "sliding-window-counter" else 1]
        for counter in hits.counters:
            keys.append(prefixed(counter.key))
            args += [counter.kind, 0, counter.expiry, 1, 1]
        now = time.time()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((keys, [repr(now), len(hits.limits) + len(hits.counters), *args], future))
        if len(self._queue) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        raw = await future
        windows = tuple(stats_from_window(hit, tuple(raw[1 + 4 * i: 5 + 4 * i]), now)
                        for i, hit in enumerate(hits.limits))
        return HitResult(admitted=bool(raw[0]), windows=windows)

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        task = asyncio.ensure_future(self._send(batch))
        task.add_done_callback(_consume)

    async def _send(self, batch: list[_Call]) -> None:
        """Send one turn's calls in one pipeline; load the script once if Redis does not know it yet."""
        try:
            results = await self._evalsha(batch)
            if any(isinstance(r, NoScriptError) for r in results):
                await self._client().script_load(_SCRIPT)
                again = [call for call, r in zip(batch, results, strict=True) if isinstance(r, NoScriptError)]
                retried = iter(await self._evalsha(again))
                results = [next(retried) if isinstance(r, NoScriptError) else r for r in results]
        except BaseException as exc:  # the connection failed: every caller gets the error
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _evalsha(self, batch: list[_Call]) -> list[Any]:
        client = self._client()
        if len(batch) == 1:
            keys, args, _ = batch[0]
            try:
                return [await client.evalsha(_SHA, len(keys), *keys, *args)]
            except NoScriptError as exc:
                return [exc]
        async with client.pipeline(transaction=False) as pipe:
            for keys, args, _ in batch:
                pipe.evalsha(_SHA, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # errors were handed to the callers; do not log "never retrieved"
