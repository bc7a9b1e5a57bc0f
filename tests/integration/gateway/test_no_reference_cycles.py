"""A governed call leaves nothing for the cyclic collector: its request context, the body decoded for it and the
vendor's response are freed as soon as the call is over.

Issue 15: every governed request was a reference cycle (its context on the ASGI scope, holding the request that
holds the scope, with the decoded body in the scope's state), and so was every httpx response (its body stream
points back at it) and every vendor error raised with its response. Such garbage keeps everything it holds until
the cyclic collector runs, so collecting less often cost memory instead of only saving time.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from foundation.http_client import CycleFreeClient
from foundation.identity import RequestContext
from tests.stack import Stack, running_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as s:
        yield s


@contextlib.contextmanager
def _garbage() -> Iterator[list[object]]:
    """What the cyclic collector finds unreachable from entering to leaving (kept to be looked at, not freed)."""
    found: list[object] = []
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def _ours(objects: list[object]) -> list[object]:
    """Our contexts and our clients' responses (not the test client's own, which is plain httpx)."""
    return [o for o in objects if isinstance(o, RequestContext)
            or (isinstance(o, httpx.Response) and o.request.url.host != "testserver")]


async def test_a_governed_write_to_a_vendor_leaves_no_cyclic_garbage(stack: Stack) -> None:
    body = {"name": "Contoso Holdings", "legal_entity_id": "2", "currency": "GBP", "tax_id": "GB987654321"}
    first = await stack.http.put("/system/erp/v1/customers/by-external-id/ACC-0091", json=body)
    assert first.status_code in (200, 201)  # a warm-up: caches filled on first use are not garbage
    with _garbage() as garbage:
        answer = await stack.http.put("/system/erp/v1/customers/by-external-id/ACC-0092", json=body)
        assert answer.status_code in (200, 201)
        assert stack.sim("erp").count("customer", "ACC-0092") == 1  # it did reach the vendor
    assert _ours(garbage) == []


async def _app(scope: dict[str, object], receive: object, send: object) -> None:
    del receive
    await send({"type": "http.response.start", "status": 200,  # type: ignore[operator]
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"items": [1, 2, 3]}'})  # type: ignore[operator]


async def test_a_read_response_is_freed_by_its_last_reference_and_keeps_its_body() -> None:
    async with CycleFreeClient(transport=httpx.ASGITransport(app=_app), base_url="http://vendor") as http:
        with _garbage() as garbage:
            response = await http.get("/items")
            assert response.json() == {"items": [1, 2, 3]} and response.elapsed.total_seconds() >= 0
            assert response.read() == b'{"items": [1, 2, 3]}'  # read again: the same bytes
            del response
        assert [o for o in garbage if isinstance(o, httpx.Response)] == []
        async with http.stream("GET", "/items") as streamed:  # a stream is left to its reader
            assert b"".join([chunk async for chunk in streamed.aiter_bytes()]) == b'{"items": [1, 2, 3]}'
