"""The command line waits out a 429/503 as `Retry-After` says when the call is safe to repeat (a read, or a write
with an Idempotency-Key) — `psconnect demo` once failed on a reconciliation read while a vendor paced us."""

from __future__ import annotations

import httpx
import pytest

from cli.client_session import ApiClient, ProblemAnswer


def client(answers: list[int], seen: list[str]) -> ApiClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        status = answers.pop(0) if answers else 200
        if status == 200:
            return httpx.Response(200, json={"ok": True})
        return httpx.Response(status, headers={"Retry-After": "0"},
                              json={"title": "Upstream system unavailable", "code": "upstream_unavailable"})
    http = httpx.AsyncClient(transport=httpx.MockTransport(handle), base_url="http://gateway")
    return ApiClient(http, {"access_token": "t"})


async def test_a_read_is_tried_again_after_503_and_429() -> None:
    seen: list[str] = []
    assert await client([503, 429], seen).call("GET", "/x") == {"ok": True}
    assert seen == ["GET", "GET", "GET"]


async def test_a_write_with_an_idempotency_key_is_tried_again() -> None:
    seen: list[str] = []
    api = client([503], seen)
    assert await api.call("POST", "/runs", json={}, headers={"Idempotency-Key": "k1"}) == {"ok": True}
    assert seen == ["POST", "POST"]


async def test_a_write_without_a_key_is_not_repeated_and_a_lasting_outage_is_reported() -> None:
    seen: list[str] = []
    with pytest.raises(ProblemAnswer, match="503"):
        await client([503], seen).call("POST", "/runs", json={})
    assert seen == ["POST"]
    seen.clear()
    with pytest.raises(ProblemAnswer, match="upstream_unavailable"):
        await client([503] * 10, seen).call("GET", "/x")
    assert len(seen) == 5  # RETRY_ATTEMPTS, then the problem is the command's one line
