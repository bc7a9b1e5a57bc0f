"""Two workers on one Redis admit, request for request, what `limits` itself admits in one process.

The outside test saw the sliding-window counter admit 62 and 61 against 60 per minute across two
workers, each time soon after an earlier burst. A race between workers would show here as the
two-client count drifting from the one-process count; the algorithm's own approximation shows in
both alike. The timeline runs in real time (the Redis clock decides the sliding and fixed windows,
as in `limits`' own scripts), so its instants keep at least 5% of a window (200 ms) away from every
window rollover, moving-window expiry and point where the previous window's weighted count drops
by one — the decisions cannot depend on scheduling jitter. It crosses window boundaries inside
bursts, on purpose.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from policies.plans import Strategy
from policies.stores import CounterStore, build_store
from policies.stores.batch import LimitHit, RequestHits

pytestmark = [pytest.mark.redis, pytest.mark.slow]

REDIS_URL = "redis://127.0.0.1:6379/0"
WINDOW = 4  # seconds
LIMIT = 3
ITEM = RateLimitItemPerSecond(LIMIT, WINDOW)
# (instant in windows after the first request, requests at that instant); 0.875 → 1.05 and 1.775 → 2.2 are
# bursts across a window boundary.
TIMELINE = ((0.0, 1), (0.875, 1), (0.95, 2), (1.05, 4), (1.55, 2), (1.775, 3), (2.2, 4), (2.85, 3), (3.575, 5))
REFERENCE: dict[Strategy, type[RateLimiter]] = {
    "fixed-window": FixedWindowRateLimiter,
    "moving-window": MovingWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
}


async def _run(strategy: Strategy, workers: tuple[CounterStore, CounterStore], reference: RateLimiter,
               start: float) -> tuple[list[int], list[int]]:
    loop = asyncio.get_running_loop()
    hits = RequestHits((LimitHit(strategy, ITEM, ("rl", f"consumer-{strategy}", "system.time")),))
    ours: list[int] = []
    theirs: list[int] = []
    for at, requests in TIMELINE:
        await asyncio.sleep(max(0.0, start + at * WINDOW - loop.time()))
        # the two workers race each other; the reference is one process, one request after another
        results = await asyncio.gather(*(workers[i % 2].hit_many(hits) for i in range(requests)))
        ours.append(sum(r.admitted for r in results))
        admitted = 0
        for _ in range(requests):
            admitted += await reference.hit(ITEM, "rl", f"consumer-{strategy}", "system.time")
        theirs.append(admitted)
    return ours, theirs


async def test_two_workers_admit_what_limits_admits_in_one_process_for_every_strategy() -> None:
    namespace = f"psconnect-test-{uuid.uuid4().hex[:12]}"
    workers = (build_store("redis", url=REDIS_URL, namespace=namespace),
               build_store("redis", url=REDIS_URL, namespace=namespace))
    storage = RedisStorage(f"async+{REDIS_URL}", implementation="redispy", key_prefix=f"{namespace}-reference")
    try:
        start = asyncio.get_running_loop().time() + 0.2
        runs = await asyncio.gather(*(_run(s, workers, REFERENCE[s](storage), start) for s in REFERENCE))
    finally:
        for store in workers:
            await store.close()
        await storage.reset()
    outcome = dict(zip(REFERENCE, runs, strict=True))
    for strategy, (ours, theirs) in outcome.items():
        assert ours == theirs, f"{strategy}: two workers admitted {ours}, limits in one process {theirs}"
    # Against a true sliding window (the most admitted within any one window length), on the same timeline:
    # the fixed window admits up to twice the limit across its boundary (5 of 3 here), the sliding-window
    # counter more than the limit too (the previous window's weight decays while the burst lasts: 5 of 3),
    # the moving window exactly the limit.
    busiest = {strategy: _busiest(ours) for strategy, (ours, _) in outcome.items()}
    assert busiest == {"fixed-window": 5, "moving-window": LIMIT, "sliding-window-counter": 5}, outcome


def _busiest(admitted: list[int]) -> int:
    """The most requests admitted within one window length (ending at an instant of the timeline)."""
    instants = [at for at, _ in TIMELINE]
    return max(sum(n for t, n in zip(instants, admitted, strict=True) if end - 1 < t <= end) for end in instants)
