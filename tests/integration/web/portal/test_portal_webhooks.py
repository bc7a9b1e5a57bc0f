"""The portal's webhook pages: a signed-in user subscribes an application, sees the secret once,
the delivery log fills as events are delivered, and a replay sends the event again."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from contracts.events import CloudEvent
from foundation.clock import utcnow
from process_apis.event_feed import publish_event
from tests.integration.experience_apis.subscriptions.test_webhook_delivery import Subscriber
from tests.integration.web.portal.portal_kit import browser, csrf, sign_up_confirmed
from tests.integration.web.portal.test_portal import register
from tests.stack import Stack, running_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as s:
        yield s


async def test_subscribe_see_the_secret_once_read_the_log_and_replay(stack: Stack) -> None:
    hook = Subscriber()
    try:
        async with browser(stack) as client:
            await sign_up_confirmed(client)
            app_id, _, _ = await register(client, legal_entities="US01")
            page = await client.get(f"/portal/apps/{app_id}/webhooks")
            assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
            refused = await client.post(f"/portal/apps/{app_id}/webhooks", data={
                "url": hook.url, "event_type": ["psconnect.time.posted"]})  # no CSRF token
            assert refused.status_code == 403
            bad = await client.post(f"/portal/apps/{app_id}/webhooks", data={
                "csrf_token": csrf(page.text), "url": hook.url, "event_type": ["psconnect.time.posted"],
                "legal_entities": "DE01"})
            assert bad.status_code == 403 and "webhook-secret" not in bad.text
            created = await client.post(f"/portal/apps/{app_id}/webhooks", data={
                "csrf_token": csrf(page.text), "url": hook.url, "event_type": ["psconnect.time.posted"]})
            assert created.status_code == 201, created.text
            secret = re.search(r'id="webhook-secret">([^<]+)<', created.text)
            assert secret and secret.group(1).startswith("whsec_")
            again = await client.get(f"/portal/apps/{app_id}/webhooks")
            assert secret.group(1) not in again.text and hook.url in again.text

            publish_event(stack.gateway.engine, CloudEvent(id="evt-portal", source="/process/time-to-bill/v1",
                                                           type="psconnect.time.posted", time=utcnow(),
                                                           data={"legal_entity": "US01"}))
            for _ in range(200):
                if hook.accepted:
                    break
                await asyncio.sleep(0.05)
            headers, body = hook.requests[0]
            Webhook(secret.group(1)).verify(body, headers)
            await asyncio.sleep(0.2)
            log = await client.get(f"/portal/apps/{app_id}/webhooks")
            assert "evt-portal" in log.text and "delivered" in log.text

            sid = re.search(r'/webhooks/(sub_[a-f0-9]+)/replay', log.text)
            assert sid
            replayed = await client.post(f"/portal/apps/{app_id}/webhooks/{sid.group(1)}/replay",
                                         data={"csrf_token": csrf(log.text), "event_id": "evt-portal"})
            assert replayed.status_code == 200
            for _ in range(200):
                if hook.accepted["evt-portal"] == 2:
                    break
                await asyncio.sleep(0.05)
            assert hook.accepted["evt-portal"] == 2
    finally:
        hook.close()
