"""The developer portal as a browser uses it: accounts, sessions, CSRF, applications, plans, usage.

Applications are registered by accounts that confirmed their email (the link the
server logged), with self-service scopes; an admin is made by `psconnect accounts grant`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.integration.web.portal.portal_kit import PASSWORD, browser, csrf, psconnect, sign_up, sign_up_confirmed
from tests.stack import Stack, running_stack
from web.portal.accounts import accounts as accounts_table
from web.portal.apps import apps as apps_table

__all__ = ["PASSWORD", "browser", "csrf", "make_admin", "register", "token"]

SELF_SERVICE = ("process.provisioning:read", "experience.workbench:read")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as s:
        yield s


async def make_admin(client: httpx.AsyncClient, stack: Stack, email: str = "boss@example.com") -> None:
    """An account made admin on the server's command line (`psconnect accounts grant`)."""
    await sign_up(client, email)
    code, _, err = psconnect(stack, "accounts", "grant", "--email", email, "--role", "admin")
    assert code == 0, err


async def register(client: httpx.AsyncClient, plan: str = "bronze", scopes: tuple[str, ...] = SELF_SERVICE,
                   legal_entities: str = "") -> tuple[str, str, str]:
    page = (await client.get("/portal/apps")).text
    answer = await client.post("/portal/apps", data={"csrf_token": csrf(page), "name": "Billing bot", "plan": plan,
                                                     "scope": list(scopes), "legal_entities": legal_entities})
    assert answer.status_code == 200, answer.text
    client_id = re.search(r'id="client-id">([^<]+)<', answer.text)
    secret = re.search(r'id="client-secret">([^<]+)<', answer.text)
    app_id = re.search(r'href="/portal/apps/(app_[a-z0-9]+)"', answer.text)
    assert client_id and secret and app_id
    return app_id.group(1), client_id.group(1), secret.group(1)


async def token(stack: Stack, client_id: str, secret: str) -> httpx.Response:
    return await stack.http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                 auth=(client_id, secret), headers={"Authorization": ""})


class TestCatalog:
    async def test_lists_apis_by_layer_with_lifecycle_and_search(self, stack: Stack) -> None:
        async with browser(stack) as client:
            page = await client.get("/portal")
            assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
            for api in ("system.crm", "system.erp", "process.provisioning", "experience.workbench"):
                assert f'data-api="{api}"' in page.text
            assert "badge stable" in page.text and "System APIs" in page.text
            # which vendor account backs which legal entity (the connections file)
            assert "Backed by: netsuite (netsuite): every other entity; businesscentral (ca01-erp): CA01; " \
                   "xero (au01-erp): AU01" in page.text
            found = (await client.get("/portal", params={"q": "opportunit"})).text
            assert 'data-api="system.crm"' in found and 'data-api="system.erp"' not in found
            assert "No API matches" in (await client.get("/portal", params={"q": "zzz-nothing"})).text


class TestAccounts:
    async def test_sign_up_sets_a_hardened_session_cookie_and_stores_no_password(self, stack: Stack) -> None:
        async with browser(stack) as client:
            answer = await sign_up(client)
            assert answer.status_code == 200 and str(answer.url).endswith("/portal/apps")
            set_cookie = answer.history[0].headers["set-cookie"].lower()
            assert "httponly" in set_cookie and "secure" in set_cookie and "samesite=lax" in set_cookie
        with stack.gateway.engine.connect() as conn:
            stored = conn.execute(sa.select(accounts_table.c.password_hash)).scalar()
        assert stored is not None and stored.startswith("scrypt$") and PASSWORD not in stored

    async def test_bad_sign_up_and_sign_in_are_refused(self, stack: Stack) -> None:
        async with browser(stack) as client:
            weak = await client.post("/portal/signup",
                                     data={"email": "x@example.com", "name": "X", "password": "short"})
            assert weak.status_code == 422 and "password" in weak.text
            await sign_up(client)
        async with browser(stack) as other:
            assert (await sign_up(other)).status_code == 409
            wrong = await other.post("/portal/signin", data={"email": "dev@example.com", "password": "nope" * 4})
            assert wrong.status_code == 401 and "wrong" in wrong.text
            right = await other.post("/portal/signin", data={"email": "dev@example.com", "password": PASSWORD})
            assert str(right.url).endswith("/portal/apps")

    async def test_pages_need_a_session(self, stack: Stack) -> None:
        async with browser(stack) as client:
            assert (await client.get("/portal/apps")).status_code == 401


class TestApplications:  # every account here confirmed its email
    async def test_register_shows_the_secret_once_and_it_works_at_the_token_endpoint(self, stack: Stack) -> None:
        async with browser(stack) as client:
            await sign_up_confirmed(client)
            app_id, client_id, secret = await register(client)
            issued = await token(stack, client_id, secret)
            assert issued.status_code == 200 and issued.json()["scope"] == " ".join(SELF_SERVICE)
            app_page = (await client.get(f"/portal/apps/{app_id}")).text
            assert secret not in app_page and client_id in app_page

    async def test_calls_show_up_in_usage(self, stack: Stack) -> None:
        async with browser(stack) as client:
            await sign_up_confirmed(client)
            app_id, client_id, secret = await register(client)
            access = (await token(stack, client_id, secret)).json()["access_token"]
            for _ in range(3):
                await stack.http.get("/process/provisioning/v1/runs", headers={"Authorization": f"Bearer {access}"})
            await stack.http.get("/experience/workbench/v1/exceptions", headers={"Authorization": f"Bearer {access}"})
            page = (await client.get(f"/portal/apps/{app_id}")).text
            assert '<td class="requests">4</td>' in page and "<svg" in page and 'class="bar requests"' in page

    async def test_rotate_replaces_the_secret_and_revoke_stops_tokens(self, stack: Stack) -> None:
        async with browser(stack) as client:
            await sign_up_confirmed(client)
            app_id, client_id, secret = await register(client)
            page = (await client.get(f"/portal/apps/{app_id}")).text
            rotated = await client.post(f"/portal/apps/{app_id}/rotate", data={"csrf_token": csrf(page)})
            new_secret = re.search(r'id="client-secret">([^<]+)<', rotated.text)
            assert new_secret and new_secret.group(1) != secret
            assert (await token(stack, client_id, secret)).status_code == 401
            assert (await token(stack, client_id, new_secret.group(1))).status_code == 200
            await client.post(f"/portal/apps/{app_id}/revoke", data={"csrf_token": csrf(page)})
            assert (await token(stack, client_id, new_secret.group(1))).status_code == 401

    async def test_forms_without_csrf_token_or_from_another_origin_are_refused(self, stack: Stack) -> None:
        async with browser(stack) as client:
            await sign_up_confirmed(client)
            page = (await client.get("/portal/apps")).text
            no_token = await client.post("/portal/apps",
                                         data={"name": "x", "plan": "bronze", "scope": "system.crm:read"})
            assert no_token.status_code == 403 and no_token.json()["code"] == "csrf_failed"
            foreign = await client.post("/portal/apps", headers={"Origin": "https://evil.example"},
                                        data={"csrf_token": csrf(page), "name": "x", "plan": "bronze"})
            assert foreign.status_code == 403 and foreign.json()["code"] == "bad_origin"
            assert "No applications yet" in (await client.get("/portal/apps")).text

    async def test_plan_upgrade_waits_for_an_admin(self, stack: Stack) -> None:
        async with browser(stack) as client:
            await sign_up_confirmed(client)
            app_id, _, _ = await register(client, plan="gold")
            page = (await client.get(f"/portal/apps/{app_id}")).text
            assert "bronze — upgrade to gold awaiting approval" in page
            assert (await client.get("/portal/admin")).status_code == 403
        async with browser(stack) as admin:
            await make_admin(admin, stack)
            queue = (await admin.get("/portal/admin")).text
            assert "Billing bot" in queue
            await admin.post(f"/portal/admin/apps/{app_id}/decision",
                             data={"csrf_token": csrf(queue), "decision": "approve"})
            assert "No pending requests" in (await admin.get("/portal/admin")).text
        with stack.gateway.engine.connect() as conn:
            plan = conn.execute(sa.select(apps_table.c.plan).where(apps_table.c.id == app_id)).scalar()
        assert plan == "gold"


async def test_the_plan_chosen_in_the_portal_sets_the_rate_limits(stack: Stack) -> None:
    async with browser(stack) as dev, browser(stack) as admin:
        await sign_up_confirmed(dev)
        _, bronze_id, bronze_secret = await register(dev, plan="bronze")
        gold_app, gold_id, gold_secret = await register(dev, plan="gold")
        await make_admin(admin, stack)
        queue = (await admin.get("/portal/admin")).text
        await admin.post(f"/portal/admin/apps/{gold_app}/decision", data={"csrf_token": csrf(queue),
                                                                           "decision": "approve"})
    policies = {}
    for name, client_id, secret in (("bronze", bronze_id, bronze_secret), ("gold", gold_id, gold_secret)):
        access = (await token(stack, client_id, secret)).json()["access_token"]
        answer = await stack.http.get("/process/provisioning/v1/runs", headers={"Authorization": f"Bearer {access}"})
        assert answer.status_code == 200
        policies[name] = answer.headers["ratelimit-policy"]
    assert '"minute";q=120' in policies["bronze"] and '"minute";q=3000' in policies["gold"]
