"""The subscriptions API through the assembled gateway, as a consumer uses it.

Subscribe (secret once), receive a signed event from the gateway's own dispatcher, read the
delivery log, replay, rotate; a restricted consumer stays within its legal entities; bad
input is a 422 problem that creates nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import typing
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from contracts.events import EVENT_TYPES, CloudEvent
from contracts.webhooks import EventType
from foundation.clock import utcnow
from process_apis.event_feed import publish_event
from tests.integration.experience_apis.subscriptions.test_webhook_delivery import Subscriber
from tests.stack import Stack, running_stack

API = "/experience/subscriptions/v1"
SCOPES = ("experience.subscriptions:read", "experience.subscriptions:write")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as s:
        yield s


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    sub = Subscriber()
    yield sub
    sub.close()


@contextlib.asynccontextmanager
async def consumer(stack: Stack, legal_entities: list[str] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    client_id, secret = stack.gateway.oauth.clients.create("webhook consumer", SCOPES, legal_entities=legal_entities)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.gateway.app),  # type: ignore[arg-type]
                                 base_url="http://testserver", timeout=60) as http:
        token = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
        assert token.status_code == 200, token.text
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield http


def _event(stack: Stack, event_id: str, entity: str | None) -> None:
    data = {} if entity is None else {"legal_entity": entity}
    publish_event(stack.gateway.engine, CloudEvent(id=event_id, source="/process/time-to-bill/v1",
                                                   type="psconnect.time.posted", time=utcnow(), data=data))


async def _until(check: typing.Callable[[], typing.Awaitable[bool]], within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not await check():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.05)


def test_the_contract_names_exactly_the_event_types_the_processes_publish() -> None:
    assert set(typing.get_args(EventType)) == EVENT_TYPES


async def test_subscribe_receive_log_replay_and_rotate(stack: Stack, subscriber: Subscriber) -> None:
    async with consumer(stack) as http:
        created = await http.post(f"{API}/subscriptions", json={"url": subscriber.url,
                                                                 "event_types": ["psconnect.time.posted"]})
        assert created.status_code == 201, created.text
        sid, secret = created.json()["subscription"]["id"], created.json()["secret"]
        assert secret.startswith("whsec_")
        listed = (await http.get(f"{API}/subscriptions")).json()
        assert [s["id"] for s in listed["items"]] == [sid] and "secret" not in listed["items"][0]

        _event(stack, "evt-api-1", "US01")

        async def delivered() -> bool:
            log = (await http.get(f"{API}/subscriptions/{sid}/deliveries")).json()["items"]
            return [d["status"] for d in log] == ["delivered"]
        await _until(delivered)
        headers, body = subscriber.requests[0]
        assert Webhook(secret).verify(body, headers)["id"] == "evt-api-1"
        log = (await http.get(f"{API}/subscriptions/{sid}/deliveries")).json()["items"]
        assert log[0]["attempts"] == 1 and log[0]["last_status_code"] == 204 and log[0]["last_latency_ms"] >= 0

        replay = await http.post(f"{API}/subscriptions/{sid}/events/evt-api-1/replay")
        assert replay.status_code == 202 and replay.json() == {"queued": 1}
        now = utcnow()
        ranged = await http.post(f"{API}/subscriptions/{sid}/replay", json={
            "since": (now - dt.timedelta(hours=1)).isoformat(), "until": (now + dt.timedelta(minutes=1)).isoformat()})
        assert ranged.json() == {"queued": 1}
        await _until(lambda: _count(subscriber, 3))
        assert {h["webhook-id"] for h, _ in subscriber.requests} == {"evt-api-1"}  # the same id each time

        rotated = await http.post(f"{API}/subscriptions/{sid}/rotate", json={"overlap_seconds": 3600})
        assert rotated.status_code == 200
        new = rotated.json()["secret"]
        _event(stack, "evt-api-2", "US01")
        await _until(lambda: _count(subscriber, 4))
        headers, body = subscriber.requests[-1]
        Webhook(secret).verify(body, headers)
        Webhook(new).verify(body, headers)

        assert (await http.delete(f"{API}/subscriptions/{sid}")).status_code == 204
        assert (await http.get(f"{API}/subscriptions/{sid}")).status_code == 404


async def _count(subscriber: Subscriber, n: int) -> bool:
    return len(subscriber.requests) >= n


async def test_a_restricted_consumer_stays_within_its_legal_entities(stack: Stack, subscriber: Subscriber) -> None:
    async with consumer(stack, legal_entities=["US01"]) as us, consumer(stack) as other:
        refused = await us.post(f"{API}/subscriptions", json={
            "url": subscriber.url, "event_types": ["psconnect.time.posted"], "legal_entities": ["DE01"]})
        assert refused.status_code == 403 and refused.json()["code"] == "legal_entity_forbidden"
        assert (await us.get(f"{API}/subscriptions")).json()["items"] == []
        created = await us.post(f"{API}/subscriptions", json={"url": subscriber.url,
                                                               "event_types": ["psconnect.time.posted"]})
        assert created.status_code == 201 and created.json()["subscription"]["legal_entities"] == ["US01"]
        sid = created.json()["subscription"]["id"]
        # another consumer cannot see or replay into it
        assert (await other.get(f"{API}/subscriptions/{sid}")).status_code == 404
        assert (await other.get(f"{API}/subscriptions/{sid}/deliveries")).status_code == 404

        _event(stack, "evt-de", "DE01")
        _event(stack, "evt-none", None)
        _event(stack, "evt-us", "US01")
        await _until(lambda: _count(subscriber, 1))
        await asyncio.sleep(1.0)  # a few dispatcher rounds: nothing else arrives
        assert [h["webhook-id"] for h, _ in subscriber.requests] == ["evt-us"]
        replay = await us.post(f"{API}/subscriptions/{sid}/events/evt-de/replay")
        assert replay.json() == {"queued": 0}


@pytest.mark.parametrize("body", [
    {"url": "ftp://127.0.0.1/x", "event_types": ["psconnect.time.posted"]},
    {"url": "http://example.com/hook", "event_types": ["psconnect.time.posted"]},
    {"url": "https://user:pw@example.com/hook", "event_types": ["psconnect.time.posted"]},
    {"url": "https://example.com/hook", "event_types": ["psconnect.no.such"]},
    {"url": "https://example.com/hook", "event_types": []},
    {"url": "https://example.com/hook", "event_types": ["psconnect.time.posted"], "legal_entities": ["a b"]},
    {"url": "https://example.com/hook", "event_types": ["psconnect.time.posted"], "extra": 1},
])
async def test_bad_input_is_a_422_problem_and_creates_nothing(stack: Stack, body: dict[str, object]) -> None:
    async with consumer(stack) as http:
        answer = await http.post(f"{API}/subscriptions", json=body)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert (await http.get(f"{API}/subscriptions")).json()["items"] == []


async def test_bad_replays_and_rotations_are_422(stack: Stack) -> None:
    async with consumer(stack) as http:
        sid = (await http.post(f"{API}/subscriptions", json={
            "url": "https://example.com/hook", "event_types": ["psconnect.time.posted"]})).json()["subscription"]["id"]
        for body in ({}, {"since": "2026-01-01T00:00:00"}, {"since": None},
                     {"event_id": "x", "since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"}):
            answer = await http.post(f"{API}/subscriptions/{sid}/replay", json=body)
            assert answer.status_code == 422, (body, answer.text)  # no range, no time zone, an unknown field
        backwards = await http.post(f"{API}/subscriptions/{sid}/replay", json={
            "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"})
        assert backwards.status_code == 202 and backwards.json() == {"queued": 0}  # an empty range, not an error
        unknown = await http.post(f"{API}/subscriptions/{sid}/events/evt-nowhere/replay")
        assert unknown.status_code == 404, unknown.text
        floats = await http.post(f"{API}/subscriptions/{sid}/rotate", json={"overlap_seconds": 1605.0})
        assert floats.status_code == 200, floats.text  # JSON Schema's integer: 1605.0 is one
        assert (await http.post(f"{API}/subscriptions/{sid}/rotate", json={"overlap_seconds": -1})).status_code == 422
