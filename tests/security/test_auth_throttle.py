"""Failed authentications are throttled; a client may authenticate only one way (issue 12).

An outside run sent 200 wrong client secrets in 0.3 s and every one was answered.
Now failures count per client id (and per account at the portal's sign-in) and per
source address, in the gateway's counter store: after the threshold the caller gets
429 with Retry-After until the window moves on — while another client calling from the
same address keeps working. RFC 6749 §2.3: a request that authenticates the client two
ways at once (Basic and a form secret) is refused with invalid_request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.web.portal.portal_kit import PASSWORD, browser, sign_up
from tests.stack import Stack, running_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as s:
        yield s


async def test_wrong_client_secrets_are_throttled_and_another_client_keeps_working(stack: Stack) -> None:
    victim, _ = stack.gateway.oauth.clients.create("victim", ["system.crm:read"])
    answers = await asyncio.gather(*(
        stack.http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(victim, f"guess-{i}"),
                        headers={"Authorization": ""}) for i in range(50)))
    statuses = [a.status_code for a in answers]
    assert statuses.count(401) == 10 and statuses.count(429) == 40, statuses
    throttled = next(a for a in answers if a.status_code == 429)
    assert int(throttled.headers["retry-after"]) >= 1
    assert throttled.json()["error"] == "temporarily_unavailable" and throttled.json()["status"] == 429
    other = await stack.http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                  auth=(stack.client_id, stack.client_secret), headers={"Authorization": ""})
    assert other.status_code == 200, other.text


async def test_guessing_many_client_ids_from_one_address_is_throttled(stack: Stack) -> None:
    statuses = [(await stack.http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                       auth=(f"client-{i}", "guess"), headers={"Authorization": ""})).status_code
                for i in range(40)]
    assert statuses[:30] == [401] * 30 and set(statuses[30:]) == {429}


async def test_a_client_authenticating_two_ways_at_once_is_refused(stack: Stack) -> None:
    both = await stack.http.post("/oauth2/token", auth=(stack.client_id, stack.client_secret),
                                 data={"grant_type": "client_credentials", "client_id": stack.client_id,
                                       "client_secret": stack.client_secret})
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"
    assert "access_token" not in both.json()


async def test_failed_sign_ins_are_throttled_per_account_and_another_account_still_signs_in(stack: Stack) -> None:
    async with browser(stack) as setup:
        await sign_up(setup, "target@example.com")
        await sign_up(setup, "bystander@example.com")
    async with browser(stack) as attacker:
        statuses = [(await attacker.post("/portal/signin", data={"email": "target@example.com",
                                                                 "password": f"guess number {i}"})).status_code
                    for i in range(12)]
        assert statuses == [401] * 10 + [429] * 2
        right = await attacker.post("/portal/signin", data={"email": "target@example.com", "password": PASSWORD})
        assert right.status_code == 429 and int(right.headers["retry-after"]) >= 1
        assert "Too many failed sign-ins" in right.text
    async with browser(stack) as bystander:
        ok = await bystander.post("/portal/signin", data={"email": "bystander@example.com", "password": PASSWORD})
        assert ok.status_code == 200 and str(ok.url).endswith("/portal/apps")
