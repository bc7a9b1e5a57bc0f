"""The gateway's own usage counters: requests, errors, 429s and latency per client per minute.

Fed by the outermost observability wrapper for every governed call, read by the
portal's usage page. The counters are the gateway's, not a log scan, so usage is exact
and cheap. Embedded mode keeps the minute buckets in this process's memory. With
several workers (REDIS_URL set) each worker would see only its own share, so each adds
its buckets to Redis once a second (one script per bucket: sums, and the maximum
latency) and the portal reads the sum of all workers from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

__all__ = ["Bucket", "UsageRecorder"]

log = logging.getLogger("psconnect.usage")

RETENTION_MINUTES = 24 * 60
_ADD_BUCKET = """
redis.call('hincrby', KEYS[1], 'requests', ARGV[1])
redis.call('hincrby', KEYS[1], 'errors', ARGV[2])
redis.call('hincrby', KEYS[1], 'throttled', ARGV[3])
redis.call('hincrby', KEYS[1], 'latency_us', ARGV[4])
local max = tonumber(redis.call('hget', KEYS[1], 'latency_max_us') or '0')
if tonumber(ARGV[5]) > max then redis.call('hset', KEYS[1], 'latency_max_us', ARGV[5]) end
redis.call('expire', KEYS[1], ARGV[6])
"""


@dataclass
class Bucket:
    minute: int
    requests: int = 0
    errors: int = 0
    throttled: int = 0
    latency_ms_total: float = 0.0
    latency_ms_max: float = 0.0

    @property
    def latency_ms_avg(self) -> float:
        return self.latency_ms_total / self.requests if self.requests else 0.0


@dataclass
class UsageRecorder:
    redis_url: str | None = None
    namespace: str = "psconnect"
    flush_interval: float = 1.0
    _buckets: dict[str, dict[int, Bucket]] = field(default_factory=lambda: defaultdict(dict))
    _redis: aioredis.Redis | None = None
    _flusher: asyncio.Task[None] | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, client_id: str, status: int, duration_ms: float, now: float | None = None) -> None:
        minute = int((time.time() if now is None else now) // 60)
        series = self._buckets[client_id]
        bucket = series.get(minute)
        if bucket is None:
            bucket = series[minute] = Bucket(minute=minute)
            for old in [m for m in series if m < minute - RETENTION_MINUTES]:
                del series[old]
        bucket.requests += 1
        if status == 429:
            bucket.throttled += 1
        elif status >= 400:
            bucket.errors += 1
        bucket.latency_ms_total += duration_ms
        bucket.latency_ms_max = max(bucket.latency_ms_max, duration_ms)

    async def series(self, client_id: str, minutes: int = 60) -> list[Bucket]:
        """The client's buckets of the last `minutes`, oldest first: every worker's in distributed mode (this
        worker's unflushed share only while Redis is unreachable)."""
        if self._redis is not None:
            await self.flush()
            with contextlib.suppress(RedisError, OSError):
                return await self._shared(client_id, minutes)
        recent = self._buckets.get(client_id, {})
        first = int(time.time() // 60) - minutes + 1
        return [recent[m] for m in sorted(recent) if m >= first]

    async def _shared(self, client_id: str, minutes: int) -> list[Bucket]:
        assert self._redis is not None
        last = int(time.time() // 60)
        span = range(last - minutes + 1, last + 1)
        async with self._redis.pipeline(transaction=False) as pipe:
            for minute in span:
                pipe.hgetall(self._key(client_id, minute))
            rows = await pipe.execute()
        return [Bucket(minute=m, requests=int(r[b"requests"]), errors=int(r[b"errors"]),
                       throttled=int(r[b"throttled"]), latency_ms_total=int(r[b"latency_us"]) / 1000,
                       latency_ms_max=int(r.get(b"latency_max_us", 0)) / 1000)
                for m, r in zip(span, rows, strict=True) if r]

    def _key(self, client_id: str, minute: int) -> str:
        return f"{self.namespace}:usage-minute:{client_id}:{minute}"

    async def start(self) -> None:
        if self.redis_url and self._redis is None:
            # Bounded: a Redis that hangs must not hold up the portal's usage page (it flushes first) or the
            # gateway's shutdown, and a failed flush keeps its buckets for the next. One immediate retry, for the
            # pooled connection a restarted Redis has closed.
            self._redis = aioredis.from_url(self.redis_url, socket_connect_timeout=1.0, socket_timeout=2.0,
                                            retry=Retry(NoBackoff(), 1))
            self._stopping = asyncio.Event()  # bound to the loop that starts this recorder
            self._flusher = asyncio.create_task(self._flush_every_interval())

    async def stop(self) -> None:
        """Stop the flusher and hand the last counts to Redis. The flusher is let finish a flush under way rather
        than cancelled in it: a cancelled flush has taken its buckets and may or may not have added them."""
        if self._flusher is not None:
            self._stopping.set()
            await self._flusher
            self._flusher = None
        if self._redis is not None:
            await self.flush()
            await self._redis.aclose()
            self._redis = None

    async def _flush_every_interval(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval):
                    await self._stopping.wait()
            await self.flush()

    async def flush(self) -> None:
        """Add this worker's buckets to Redis; on failure they stay here and go with the next flush."""
        if self._redis is None or not self._buckets:
            return
        pending, self._buckets = self._buckets, defaultdict(dict)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for client_id, series in pending.items():
                    for minute, b in series.items():
                        pipe.eval(_ADD_BUCKET, 1, self._key(client_id, minute), b.requests, b.errors, b.throttled,
                                  round(b.latency_ms_total * 1000), round(b.latency_ms_max * 1000),
                                  (RETENTION_MINUTES + 2) * 60)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            for client_id, series in pending.items():  # keep them: merge back into what arrived meanwhile
                for minute, b in series.items():
                    mine = self._buckets[client_id].setdefault(minute, Bucket(minute=minute))
                    mine.requests += b.requests
                    mine.errors += b.errors
                    mine.throttled += b.throttled
                    mine.latency_ms_total += b.latency_ms_total
                    mine.latency_ms_max = max(mine.latency_ms_max, b.latency_ms_max)
            log.warning("usage counters not flushed to Redis; kept for the next attempt",
                        extra={"fields": {"event": "usage_flush_failed", "error": repr(exc)}})
