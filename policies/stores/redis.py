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

The calls are written to the wire as RESP bytes built here, not through redis-py's command
packer: a request's script call has some thirty arguments, and packing them one by one in
Python was a tenth of the governed path's CPU (issue 15). A hit's keys and arguments are the
same request after request, so each is encoded once and kept (`_encoded`); only the time and
the hit count are encoded per call. The replies are read one per call, errors kept per call,
as redis-py's own pipeline does, so the connection never holds an unread reply.
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
from redis.exceptions import NoScriptError, RedisError, ResponseError

from policies.stores.base import CounterStore
from policies.stores.batch import CounterHit, HitResult, LimitHit, RequestHits, stats_from_window

__all__ = ["RedisCounterStore"]

_SCRIPT = Path(__file__).with_name("hits.lua").read_text()
_SHA = hashlib.sha1(_SCRIPT.encode()).hexdigest()
_Call = tuple[bytes, "asyncio.Future[Any]"]
_KIND = {"sliding-window-counter": "sliding", "fixed-window": "fixed", "moving-window": "moving"}
_CACHE_LIMIT = 50_000
"""Encoded hits kept; a counter's key names its day, so the cache is emptied when it grows past this."""


def _bulk(value: str | int) -> bytes:
    data = str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


_EVALSHA = _bulk("EVALSHA") + _bulk(_SHA)


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
        self._encodings: dict[tuple[object, ...], tuple[int, bytes, bytes]] = {}

    @property
    def storage(self) -> RedisStorage:
        return self._storage

    async def close(self) -> None:
        client: Any = getattr(self._storage.bridge, "storage", None)  # redis.asyncio.Redis (redispy bridge)
        if client is not None:
            await client.aclose()

    def _client(self) -> Any:
        return self._storage.bridge.get_connection()  # type: ignore[attr-defined]

    def _encoded(self, hit: LimitHit | CounterHit) -> tuple[int, bytes, bytes]:
        """(number of keys, the keys as RESP, the five arguments as RESP) of one hit, encoded once."""
        if isinstance(hit, LimitHit):
            ident: tuple[object, ...] = (hit.strategy, hit.key, hit.item.amount, hit.item.get_expiry(), hit.cost)
        else:
            ident = (hit.kind, hit.key, hit.expiry)
        found = self._encodings.get(ident)
        if found is not None:
            return found
        prefixed = self._storage.bridge.prefixed_key
        if isinstance(hit, LimitHit):
            if hit.strategy == "sliding-window-counter":
                keys = [prefixed(f"{{{hit.key}}}/-1"), prefixed(f"{{{hit.key}}}")]
            else:
                keys = [prefixed(hit.key)]
            args: list[str | int] = [_KIND[hit.strategy], hit.item.amount, hit.item.get_expiry(), hit.cost, len(keys)]
        else:
            keys = [prefixed(hit.key)]
            args = [hit.kind, 0, hit.expiry, 1, 1]
        if len(self._encodings) >= _CACHE_LIMIT:
            self._encodings.clear()
        found = self._encodings[ident] = (len(keys), b"".join(map(_bulk, keys)), b"".join(map(_bulk, args)))
        return found

    def _command(self, hits: RequestHits, now: float) -> bytes:
        """`EVALSHA <sha> <nkeys> KEYS… <now> <n> ARGS…` as RESP (see hits.lua for the layout)."""
        parts = [*(self._encoded(hit) for hit in hits.limits), *(self._encoded(hit) for hit in hits.counters)]
        nkeys = sum(n for n, _, _ in parts)
        return b"".join((b"*%d\r\n" % (3 + nkeys + 2 + 5 * len(parts)), _EVALSHA, _bulk(nkeys),
                         *(k for _, k, _ in parts), _bulk(repr(now)), _bulk(len(parts)), *(a for _, _, a in parts)))

    async def _hit_many(self, hits: RequestHits) -> HitResult:
        now = time.time()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((self._command(hits, now), future))
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
        """Send one turn's calls in one write; load the script once if Redis does not know it yet."""
        try:
            results = await self._evalsha(batch)
            if any(isinstance(r, NoScriptError) for r in results):
                await self._client().script_load(_SCRIPT)
                again = [call for call, r in zip(batch, results, strict=True) if isinstance(r, NoScriptError)]
                retried = iter(await self._evalsha(again))
                results = [next(retried) if isinstance(r, NoScriptError) else r for r in results]
        except BaseException as exc:  # the connection failed: every caller gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _evalsha(self, batch: list[_Call]) -> list[Any]:
        """The calls' replies in order, a refused call's error in its place (NOSCRIPT among them)."""
        pool = self._client().connection_pool
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command([command for command, _ in batch])
            results: list[Any] = []
            for _ in batch:
                try:
                    results.append(await connection.read_response())
                except ResponseError as exc:
                    results.append(exc)
            return results
        except BaseException:
            await connection.disconnect()  # a reply may be left unread: the connection cannot be reused
            raise
        finally:
            await pool.release(connection)


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # errors were handed to the callers; do not log "never retrieved"
