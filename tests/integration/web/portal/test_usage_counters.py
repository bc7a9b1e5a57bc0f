"""Usage counters the portal draws: summed over every worker through Redis, kept while Redis is away."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from gateway.usage import UsageRecorder
from tests.redis_server import own_redis

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379/0"


async def test_two_workers_counts_are_summed_for_the_portal() -> None:
    namespace = f"psconnect-test-{uuid.uuid4().hex[:12]}"
    one, two = UsageRecorder(REDIS_URL, namespace), UsageRecorder(REDIS_URL, namespace)
    await one.start()
    await two.start()
    try:
        now = time.time()
        for status, ms in ((200, 10.0), (200, 30.0), (429, 1.0)):
            one.record("app-1", status, ms, now)
        for status, ms in ((500, 80.0), (200, 20.0)):
            two.record("app-1", status, ms, now)
        two.record("app-2", 200, 5.0, now)
        await two.flush()
        [bucket] = await one.series("app-1")  # flushes its own share first
        assert (bucket.requests, bucket.errors, bucket.throttled) == (5, 1, 1)
        assert bucket.latency_ms_max == pytest.approx(80.0)
        assert bucket.latency_ms_avg == pytest.approx(141.0 / 5)
        assert [b.requests for b in await two.series("app-2")] == [1]
    finally:
        await one.stop()
        await two.stop()


async def test_counts_survive_a_redis_outage_and_reach_it_later() -> None:
    namespace = f"psconnect-test-{uuid.uuid4().hex[:12]}"
    recorder = UsageRecorder("redis://127.0.0.1:1/0", namespace)  # nothing listens there
    await recorder.start()
    recorder.record("app-1", 200, 12.0)
    await recorder.flush()
    assert [b.requests for b in await recorder.series("app-1")] == [1]  # this worker's share, from memory
    await recorder.stop()
    recorder.redis_url = REDIS_URL  # Redis is back
    await recorder.start()
    try:
        await recorder.flush()
        reader = UsageRecorder(REDIS_URL, namespace)
        await reader.start()
        assert [b.requests for b in await reader.series("app-1")] == [1]
        await reader.stop()
    finally:
        await recorder.stop()


async def test_embedded_mode_keeps_the_last_hour_in_memory() -> None:
    recorder = UsageRecorder()
    now = time.time()
    recorder.record("app-1", 200, 5.0, now - 2 * 3600)
    recorder.record("app-1", 404, 7.0, now)
    [bucket] = await recorder.series("app-1")
    assert (bucket.requests, bucket.errors) == (1, 1)


async def test_stopping_during_a_flush_loses_and_doubles_no_request() -> None:
    namespace = f"psconnect-test-{uuid.uuid4().hex[:12]}"
    reader = UsageRecorder(REDIS_URL, namespace)
    await reader.start()
    try:
        for _ in range(20):  # the flusher never rests: each stop lands in a flush under way or about to start
            recorder = UsageRecorder(REDIS_URL, namespace, flush_interval=0.0)
            await recorder.start()
            for _ in range(10):
                recorder.record("app-1", 200, 1.0)
                await asyncio.sleep(0)
            await recorder.stop()
        assert sum(b.requests for b in await reader.series("app-1")) == 200
    finally:
        await reader.stop()


async def test_the_first_flush_after_a_redis_restart_lands() -> None:
    with own_redis() as server:
        url = f"redis://127.0.0.1:{server.port}/0"
        recorder, reader = UsageRecorder(url, "restart", flush_interval=3600), UsageRecorder(url, "restart")
        await recorder.start()
        try:
            recorder.record("app-1", 200, 1.0)
            await recorder.flush()  # its pooled connection now points at the server about to go
            server.stop()
            server.start()
            recorder.record("app-1", 200, 1.0)
            await recorder.flush()
            await reader.start()
            assert [b.requests for b in await reader.series("app-1")] == [1]  # the restart emptied Redis
        finally:
            await recorder.stop()
            await reader.stop()
