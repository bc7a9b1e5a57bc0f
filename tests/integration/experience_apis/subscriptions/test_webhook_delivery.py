"""Webhook delivery as a subscriber sees it: signed per Standard Webhooks, at least once, durable.

A real HTTP server on 127.0.0.1 plays the subscriber; the store is PostgreSQL (as in a
distributed deployment). Signatures are checked with the `standardwebhooks` package.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook

from contracts.events import CloudEvent
from experience_apis.subscriptions.dispatcher import Backoff, Dispatcher
from experience_apis.subscriptions.signing import new_secret
from experience_apis.subscriptions.store import SubscriptionStore
from foundation.clock import utcnow
from foundation.db import create_engine, metadata
from process_apis.event_feed import EventFeed, publish_event
from tests.stack import PG_ADMIN_URL

FAST = Backoff(base=0.02, factor=2.0, cap=0.1, max_attempts=6, jitter=0.2)


class Subscriber:
    """A local HTTP endpoint that answers 500 to its first `fail_first` requests, then 204."""

    def __init__(self, fail_first: int = 0, always_fail: bool = False, delay: float = 0.0) -> None:
        self.fail_first, self.always_fail, self.delay = fail_first, always_fail, delay
        self.in_flight = self.max_in_flight = 0
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.accepted: Counter[str] = Counter()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if outer.delay:
                    with outer.lock:
                        outer.in_flight += 1
                        outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                    time.sleep(outer.delay)
                    with outer.lock:
                        outer.in_flight -= 1
                with outer.lock:
                    outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    fail = outer.always_fail or len(outer.requests) <= outer.fail_first
                    if not fail:
                        outer.accepted[self.headers["webhook-id"]] += 1
                self.send_response(500 if fail else 204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def engine() -> Iterator[sa.Engine]:
    import uuid

    name = f"psconnect_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(f"postgresql://postgres@127.0.0.1:5432/{name}")
    try:
        metadata.create_all(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    sub = Subscriber()
    yield sub
    sub.close()


def _publish(engine: sa.Engine, n: int, *, entity: str | None = "US01", type_: str = "psconnect.time.posted",
             prefix: str = "evt") -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(n)]
    for event_id in ids:
        data: dict[str, Any] = {"n": event_id} if entity is None else {"legal_entity": entity, "n": event_id}
        publish_event(engine, CloudEvent(id=event_id, source="/process/test/v1", type=type_, time=utcnow(),
                                         data=data))
    return ids


def _subscribe(store: SubscriptionStore, url: str, *, entities: list[str] | None = None,
               types: tuple[str, ...] = ("psconnect.time.posted",)) -> tuple[str, str]:
    secret = new_secret()
    sub = store.create("client-a", url, list(types), entities, "", secret)
    return sub.id, secret


async def test_every_delivery_verifies_with_the_standardwebhooks_package(engine: sa.Engine,
                                                                         subscriber: Subscriber) -> None:
    store = SubscriptionStore(engine)
    _sid, secret = _subscribe(store, subscriber.url)
    ids = _publish(engine, 3)
    dispatcher = Dispatcher(store, backoff=FAST)
    await dispatcher.start()
    try:
        await dispatcher.drain()
    finally:
        await dispatcher.stop()
    assert sorted(subscriber.accepted) == ids
    verifier = Webhook(secret)
    for headers, body in subscriber.requests:
        event = verifier.verify(body, headers)
        assert event["id"] == headers["webhook-id"] and event["specversion"] == "1.0"


async def test_rotation_signs_with_both_secrets_during_the_overlap_then_only_the_new(
        engine: sa.Engine, subscriber: Subscriber) -> None:
    store = SubscriptionStore(engine)
    sid, old = _subscribe(store, subscriber.url)
    new = new_secret()
    store.rotate(sid, new, dt.timedelta(hours=1))
    _publish(engine, 1, prefix="during")
    dispatcher = Dispatcher(store, backoff=FAST)
    await dispatcher.start()
    try:
        await dispatcher.drain()
        headers, body = subscriber.requests[-1]
        assert len(headers["webhook-signature"].split(" ")) == 2
        Webhook(old).verify(body, headers)
        Webhook(new).verify(body, headers)
        store.rotate(sid, new_secret(), dt.timedelta(0))  # the overlap closed: only the newest signs
        newest = store.signing_secrets(sid)
        assert len(newest) == 1 and newest[0] not in (old, new)
    finally:
        await dispatcher.stop()


async def test_a_failing_subscriber_that_recovers_gets_every_event_once_per_id(engine: sa.Engine) -> None:
    flaky = Subscriber(fail_first=7)
    try:
        store = SubscriptionStore(engine)
        sid, _ = _subscribe(store, flaky.url)
        ids = _publish(engine, 5)
        dispatcher = Dispatcher(store, backoff=FAST)
        await dispatcher.start()
        try:
            await dispatcher.drain(deadline=20)
        finally:
            await dispatcher.stop()
        assert flaky.accepted == Counter(dict.fromkeys(ids, 1))
        log = store.log(sid, None, 50)
        assert {d.status for d in log} == {"delivered"}
        assert sum(d.attempts for d in log) == len(flaky.requests) == 12
        assert all(d.last_latency_ms is not None and d.last_status_code == 204 for d in log)
    finally:
        flaky.close()


async def test_a_subscriber_that_never_answers_2xx_is_dead_lettered_after_the_schedule(engine: sa.Engine) -> None:
    down = Subscriber(always_fail=True)
    try:
        store = SubscriptionStore(engine)
        sid, _ = _subscribe(store, down.url)
        _publish(engine, 2)
        dispatcher = Dispatcher(store, backoff=FAST)
        await dispatcher.start()
        try:
            await dispatcher.drain(deadline=20)
        finally:
            await dispatcher.stop()
        log = store.log(sid, None, 50)
        assert [(d.status, d.attempts, d.last_status_code) for d in log] == [("dead", 6, 500)] * 2
        assert len(down.requests) == 12
    finally:
        down.close()


def test_the_default_backoff_is_exponential_with_jitter_for_about_a_day() -> None:
    backoff = Backoff()
    nominal = [min(backoff.base * backoff.factor ** (n - 1), backoff.cap) for n in range(1, backoff.max_attempts)]
    assert nominal == sorted(nominal) and nominal[0] == 5 and nominal[1] == 20
    assert 20 * 3600 <= backoff.nominal_total() <= 30 * 3600
    for n, expected in enumerate(nominal, start=1):
        delays = {backoff.delay(n) for _ in range(20)}
        assert all(d is not None and 0.8 * expected <= d <= 1.2 * expected for d in delays)
        assert len(delays) > 1  # jittered
    assert backoff.delay(backoff.max_attempts) is None


async def test_deliveries_survive_a_restart_and_two_dispatchers_never_send_an_attempt_twice(
        engine: sa.Engine, subscriber: Subscriber) -> None:
    store = SubscriptionStore(engine)
    _subscribe(store, subscriber.url)
    ids = _publish(engine, 20)
    # A dispatcher fans out and claims, then its process dies before sending anything.
    crashed = Dispatcher(store, backoff=FAST, lease=dt.timedelta(seconds=1), timeout=0.2)
    store.fan_out()
    held = store.claim(crashed.owner, dt.timedelta(milliseconds=400), 5)
    assert len(held) == 5
    # "Restart": new engines, new stores, two dispatchers side by side on the same tables.
    url = engine.url.render_as_string(hide_password=False)
    engines = [sa.create_engine(url), sa.create_engine(url)]
    workers = [Dispatcher(SubscriptionStore(e), backoff=FAST) for e in engines]
    try:
        await asyncio.sleep(0.5)  # the dead worker's leases expire
        for w in workers:
            await w.start()
        await asyncio.gather(*(w.drain(deadline=20) for w in workers))
    finally:
        for w in workers:
            await w.stop()
        for e in engines:
            e.dispose()
    assert subscriber.accepted == Counter(dict.fromkeys(ids, 1))
    assert len(subscriber.requests) == 20


async def test_a_restricted_subscription_receives_only_its_entities_events(engine: sa.Engine,
                                                                          subscriber: Subscriber) -> None:
    store = SubscriptionStore(engine)
    _subscribe(store, subscriber.url, entities=["US01"])
    ours = _publish(engine, 2, entity="US01", prefix="us")
    _publish(engine, 2, entity="DE01", prefix="de")
    _publish(engine, 1, entity=None, prefix="none")
    _publish(engine, 1, entity="US01", type_="psconnect.invoice.drafted", prefix="other-type")
    dispatcher = Dispatcher(store, backoff=FAST)
    await dispatcher.start()
    try:
        await dispatcher.drain()
    finally:
        await dispatcher.stop()
    assert sorted(subscriber.accepted) == ours
    assert json.loads(subscriber.requests[0][1])["data"]["legal_entity"] == "US01"
    assert EventFeed(engine).last_seq() == 6


async def test_an_event_committed_after_a_later_numbered_one_is_still_delivered(engine: sa.Engine,
                                                                                subscriber: Subscriber) -> None:
    from process_apis._internal.tables import events as outbox

    store = SubscriptionStore(engine)
    _subscribe(store, subscriber.url)
    ids = _publish(engine, 3, prefix="late")
    with engine.begin() as conn:  # the second event's transaction has not committed yet
        row = dict(conn.execute(sa.select(outbox).where(outbox.c.id == ids[1])).mappings().one())
        conn.execute(outbox.delete().where(outbox.c.id == ids[1]))
    assert store.fan_out() == 2
    with engine.begin() as conn:  # …now it has, under its lower number
        conn.execute(outbox.insert().values(**row))
    assert store.fan_out() == 1
    assert store.fan_out() == 0  # and never twice
    dispatcher = Dispatcher(store, backoff=FAST)
    await dispatcher.start()
    try:
        await dispatcher.drain()
    finally:
        await dispatcher.stop()
    assert subscriber.accepted == Counter(dict.fromkeys(ids, 1))


async def test_a_hanging_subscriber_slows_no_one_else(engine: sa.Engine, subscriber: Subscriber) -> None:
    hanging = Subscriber(delay=3.0)
    try:
        store = SubscriptionStore(engine)
        _subscribe(store, hanging.url)
        _subscribe(store, subscriber.url)
        ids = _publish(engine, 12)
        dispatcher = Dispatcher(store, backoff=Backoff(base=30, max_attempts=2), timeout=0.5, per_subscription=2)
        await dispatcher.start()
        try:
            started = time.monotonic()
            while len(subscriber.accepted) < len(ids):
                assert time.monotonic() - started < 5, "the healthy subscriber waited on the hanging one"
                await asyncio.sleep(0.02)
            elapsed = time.monotonic() - started
        finally:
            await dispatcher.stop()
        assert elapsed < 2.0
        assert hanging.max_in_flight <= 2  # bounded per subscription
    finally:
        hanging.close()


async def test_stop_ends_the_dispatcher_even_as_a_delivery_finishes(engine: sa.Engine) -> None:
    """A gateway shutting down just as a delivery ends (which wakes the dispatcher's loop) still stops it."""
    dispatcher = Dispatcher(SubscriptionStore(engine), poll=30)
    await dispatcher.start()
    await asyncio.sleep(0.2)  # the loop's first round is done: it waits for a wake-up or the poll interval
    dispatcher._wake.set()  # what a finished delivery does, in the same turn of the event loop as the stop
    await asyncio.wait_for(dispatcher.stop(), 5)
