"""Idempotency-Key through the real policy chain, on the memory store and on real Redis.

One suite runs over both stores; the Redis runs also put two app instances (two
"workers") on one Redis, so a duplicate sent to the other worker is caught too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from policies.idempotency import REPLAYED_HEADER, Idempotency, IdempotencyConfig
from policies.idempotency_stores import IdempotencyStore, MemoryIdempotencyStore, RedisIdempotencyStore
from policies.validation import RequestValidation, ValidationConfig
from tests.integration.governance_requests._app import Handlers, governed_app

REDIS_URL = "redis://127.0.0.1:6379/0"
CONFIG = IdempotencyConfig(operations={"orders.create": "required", "orders.put": "optional"}, ttl_seconds=60,
                           in_flight_seconds=30, max_stored_body=4096)
StoreFactory = Callable[[], IdempotencyStore]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store_factory(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    made: list[IdempotencyStore] = []
    memory = MemoryIdempotencyStore()
    prefix = f"psconnect:test:{uuid.uuid4().hex[:8]}:"

    def make() -> IdempotencyStore:
        # memory: one store (one worker); redis: a new client per call, all on the same server
        store: IdempotencyStore = memory if request.param == "memory" else RedisIdempotencyStore(REDIS_URL, prefix)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.aclose()


class Gateway:
    def __init__(self, store: IdempotencyStore, config: IdempotencyConfig = CONFIG) -> None:
        self.handlers = Handlers()
        app = governed_app(self.handlers, [RequestValidation(ValidationConfig()), Idempotency(config, store)])
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")  # type: ignore[arg-type]

    async def create(self, key: str | None, body: dict[str, object] | None = None, client: str = "alpha",
                     path: str = "/t/v1/orders") -> httpx.Response:
        headers = {"X-Test-Client": client}
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.http.post(path, json=body or {"sku": "A-1", "quantity": 2}, headers=headers)


def new_key() -> str:
    return f"key-{uuid.uuid4()}"


class TestReplay:
    async def test_a_retry_gets_the_first_response_without_running_again(self, store_factory: StoreFactory) -> None:
        gw = Gateway(store_factory())
        key = new_key()
        first = await gw.create(key)
        again = await gw.create(key)
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json() == {"id": "ORD-1", "sku": "A-1", "quantity": 2, "pad": ""}
        assert again.headers["location"] == "/orders/ORD-1"
        assert again.headers[REPLAYED_HEADER] == "true" and REPLAYED_HEADER not in first.headers
        assert "x-per-request" not in again.headers  # only representation headers are replayed
        assert again.headers["content-type"] == "application/json"
        assert gw.handlers.calls == 1

    async def test_different_keys_run_separately(self, store_factory: StoreFactory) -> None:
        gw = Gateway(store_factory())
        assert (await gw.create(new_key())).json()["id"] == "ORD-1"
        assert (await gw.create(new_key())).json()["id"] == "ORD-2"

    async def test_keys_are_scoped_per_consumer(self, store_factory: StoreFactory) -> None:
        gw = Gateway(store_factory())
        key = new_key()
        mine, theirs = await gw.create(key, client="alpha"), await gw.create(key, client="beta")
        assert mine.json()["id"] == "ORD-1" and theirs.json()["id"] == "ORD-2"
        assert REPLAYED_HEADER not in theirs.headers

    async def test_a_replay_reaches_another_worker(self, store_factory: StoreFactory) -> None:
        one, two = Gateway(store_factory()), Gateway(store_factory())
        key = new_key()
        first = await one.create(key)
        replay = await two.create(key)
        assert replay.json() == first.json() and replay.headers[REPLAYED_HEADER] == "true"
        assert one.handlers.calls + two.handlers.calls == 1

    async def test_an_optional_operation_without_key_runs_every_time(self, store_factory: StoreFactory) -> None:
        gw = Gateway(store_factory())
        for _ in range(2):
            response = await gw.http.put("/t/v1/orders/O1", json={"sku": "B", "quantity": 1},
                                         headers={"X-Test-Client": "alpha"})
            assert response.status_code == 200
        assert gw.handlers.calls == 2


class TestMisuse:
    async def test_same_key_with_another_body_is_422(self, store_factory: StoreFactory) -> None:
        gw = Gateway(store_factory())
        key = new_key()
        await gw.create(key, {"sku": "A-1", "quantity": 2})
        response = await gw.create(key, {"sku": "A-1", "quantity": 3})
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "idempotency_key_mismatch"
        assert gw.handlers.calls == 1

    async def test_same_key_on_another_route_is_422(self, store_factory: StoreFactory) -> None:
        gw = Gateway(store_factory())
        key = new_key()
        await gw.create(key)
        other = await gw.http.put("/t/v1/orders/O1", json={"sku": "A-1", "quantity": 2},
                                  headers={"X-Test-Client": "alpha", "Idempotency-Key": key})
        assert other.status_code == 422 and other.json()["code"] == "idempotency_key_mismatch"

    async def test_required_key_missing_or_malformed_is_400(self, store_factory: StoreFactory) -> None:
        gw = Gateway(store_factory())
        missing, short, bad = await gw.create(None), await gw.create("abc"), await gw.create("spaces are bad")
        assert [r.status_code for r in (missing, short, bad)] == [400, 400, 400]
        assert missing.json()["code"] == "idempotency_key_missing"
        assert short.json()["code"] == bad.json()["code"] == "idempotency_key_invalid"
        assert gw.handlers.calls == 0


class TestConcurrency:
    async def test_concurrent_duplicates_run_once_the_rest_get_409(self, store_factory: StoreFactory) -> None:
        workers = [Gateway(store_factory()) for _ in range(2)]
        gate = asyncio.Event()
        for w in workers:
            w.handlers.gate = gate
        key = new_key()
        tasks = [asyncio.create_task(workers[i % 2].create(key)) for i in range(12)]
        await asyncio.sleep(0.2)  # every request reaches the store; the first holds the gate
        assert sum(w.handlers.calls for w in workers) == 1
        gate.set()
        responses = await asyncio.gather(*tasks)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [409] * 11
        conflict = next(r for r in responses if r.status_code == 409)
        assert conflict.json()["code"] == "idempotency_in_flight" and conflict.headers["retry-after"] == "1"
        assert sum(w.handlers.calls for w in workers) == 1
        replay = await workers[1].create(key)
        assert replay.status_code == 201 and replay.headers[REPLAYED_HEADER] == "true"


class TestRetention:
    async def test_records_expire_after_the_ttl(self, store_factory: StoreFactory) -> None:
        gw = Gateway(store_factory(), IdempotencyConfig(operations={"orders.create": "required"}, ttl_seconds=1))
        key = new_key()
        await gw.create(key)
        assert (await gw.create(key)).headers.get(REPLAYED_HEADER) == "true"
        await asyncio.sleep(1.2)
        fresh = await gw.create(key)
        assert REPLAYED_HEADER not in fresh.headers and fresh.json()["id"] == "ORD-2"

    async def test_a_server_error_releases_the_key_for_a_retry(self, store_factory: StoreFactory) -> None:
        gw = Gateway(store_factory())
        gw.handlers.fail_next = True
        key = new_key()
        failed = await gw.create(key)
        retried = await gw.create(key)
        assert failed.status_code == 500
        assert retried.status_code == 201 and REPLAYED_HEADER not in retried.headers
        assert gw.handlers.calls == 2

    async def test_a_response_over_the_size_limit_is_not_stored(self, store_factory: StoreFactory) -> None:
        gw = Gateway(store_factory())
        gw.handlers.body_size = 10_000  # over max_stored_body=4096
        key = new_key()
        first, second = await gw.create(key), await gw.create(key)
        assert first.status_code == second.status_code == 201
        assert REPLAYED_HEADER not in second.headers and gw.handlers.calls == 2


@pytest.mark.redis
class TestStoreOutage:
    async def test_fail_closed_answers_503_and_runs_nothing(self) -> None:
        store = RedisIdempotencyStore("redis://127.0.0.1:1/0")  # nothing listens there
        gw = Gateway(store)
        response = await gw.create(new_key())
        await store.aclose()
        assert response.status_code == 503 and response.json()["code"] == "idempotency_store_unavailable"
        assert response.headers["retry-after"] == "1" and gw.handlers.calls == 0

    async def test_fail_open_runs_the_request_unprotected(self) -> None:
        store = RedisIdempotencyStore("redis://127.0.0.1:1/0")
        config = IdempotencyConfig(operations={"orders.create": "required"}, fail_open=True)
        gw = Gateway(store, config)
        response = await gw.create(new_key())
        await store.aclose()
        assert response.status_code == 201 and gw.handlers.calls == 1
