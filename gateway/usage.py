"""The gateway's own usage counters: requests, errors, 429s and latency per client per minute.

Fed by the outermost observability wrapper for every governed call, read by the
portal's usage page. Buckets are per minute and kept for a day in memory (embedded
mode); the counters are the gateway's, not a log scan, so usage is exact and cheap.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

__all__ = ["Bucket", "UsageRecorder"]

RETENTION_MINUTES = 24 * 60


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
    _buckets: dict[str, dict[int, Bucket]] = field(default_factory=lambda: defaultdict(dict))

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

    def series(self, client_id: str) -> list[Bucket]:
        return [self._buckets[client_id][m] for m in sorted(self._buckets.get(client_id, {}))]
