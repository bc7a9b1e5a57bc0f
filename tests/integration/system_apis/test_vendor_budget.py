"""One consumer's burst must not stall the others: Harvest's 100 requests per 15 s are shared fairly.

Harvest allows 100 requests per 15 s for the whole firm (one token). The outside test saw one
consumer's burst use them up, after which the gateway waited out Harvest's `Retry-After` inside
every caller's request — another consumer's request to the time API was held 13–15 s. Here the
whole embedded gateway runs with production's vendor retry policy against the Harvest simulator
with its real limit and clock: consumer A bursts, and while it lasts consumer B and the process
APIs' service identity each ask once. B and the service identity are answered at once, A is told to come back
(429 for its spent share of the vendor's budget, or 503 when the vendor is busy, with
`Retry-After`), and no request is held open.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.app import Gateway, create_gateway
from gateway.settings import load_settings
from tests.stack import lifespan

PROJECTS = "/system/time/v1/projects?limit=1"
BURST = 130


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    # No vendor_retry: the vendor clients wait as production's do (Retry-After honoured up to 60 s before).
    gw = create_gateway(load_settings(env={}, home=str(tmp_path), seed_demo=False))
    async with lifespan(gw.app):
        yield gw


async def _client(gw: Gateway, http: httpx.AsyncClient, name: str) -> dict[str, str]:
    client_id, secret = gw.oauth.clients.create(name, ("system.time:read",))
    token = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def _timed(http: httpx.AsyncClient, headers: dict[str, str]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await http.get(PROJECTS, headers=headers)
    return response, time.perf_counter() - started


async def test_one_consumers_burst_leaves_the_time_api_to_the_others(gateway: Gateway) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app),  # type: ignore[arg-type]
                                 base_url="http://testserver", timeout=60) as http:
        a = await _client(gateway, http, "consumer A")
        b = await _client(gateway, http, "consumer B")
        bursting = asyncio.gather(*(_timed(http, a) for _ in range(BURST)))
        await asyncio.sleep(0.5)  # A's burst has reached Harvest by now; B asks while it lasts
        b_response, b_seconds = await asyncio.wait_for(_timed(http, b), 30)
        service = {"Authorization": "Bearer " + gateway.oauth.issue_service_token(
            gateway.settings.service_client_id, ("system.time:read",))}
        process_response, process_seconds = await asyncio.wait_for(_timed(http, service), 30)
        a_again, a_again_seconds = await asyncio.wait_for(_timed(http, a), 30)
        burst = await asyncio.wait_for(bursting, 30)

    statuses = Counter(r.status_code for r, _ in burst)
    slowest = max(seconds for _, seconds in burst)
    print(f"\nA's burst of {BURST}: {dict(statuses)}, slowest {slowest:.2f}s; B: {b_response.status_code} in "
          f"{b_seconds:.2f}s; service identity: {process_response.status_code} in {process_seconds:.2f}s; "
          f"A again: {a_again.status_code} in {a_again_seconds:.2f}s")
    # A is told to come back, at once and with a time to wait
    refused = [r for r, _ in burst if r.status_code in (429, 503)]
    assert refused, statuses
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    # A's share refills as the window rolls, so its next request may be served again; refused, it is told when
    assert a_again.status_code == 200 or int(a_again.headers["Retry-After"]) >= 1
    assert set(statuses) <= {200, 429, 503}
    # nobody is held: not A's burst, not A's next request, and B is served
    assert slowest < 3.0 and a_again_seconds < 1.0
    assert b_response.status_code == 200, b_response.text
    assert b_seconds < 1.0
    assert process_response.status_code == 200 and process_seconds < 1.0
