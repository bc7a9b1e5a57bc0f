"""Portal permissions a finance firm would accept (issue 12).

Roles never come from a sign-up email: an account confirms its address by a signed,
expiring link, and admin/operations are granted only by an admin (portal) or on the
server (`psconnect accounts`, or the first-run enrolment link), each audited.
Self-service applications get reads at once; finance writes and system-layer scopes
wait for an admin, who may restrict the app to legal entities. `psconnect clients
create` refuses scopes that no API declares.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import KeySet

from foundation.audit import audit_events
from gateway.oauth.clients import oauth_clients
from tests.integration.web.portal.portal_kit import (
    MAILBOX,
    browser,
    csrf,
    psconnect,
    sign_up,
    sign_up_confirmed,
)
from tests.integration.web.portal.test_portal import make_admin, register, token
from tests.stack import Stack, running_stack
from web.portal.accounts import Accounts, accounts

FINANCE_WRITE = ("process.time_to_bill:read", "process.time_to_bill:write", "system.erp:write")


@pytest.fixture
async def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    # The settings that used to make these addresses admin and operations staff at sign-up.
    monkeypatch.setenv("PSCONNECT_PORTAL_ADMINS", "boss@example.com")
    monkeypatch.setenv("PSCONNECT_OPERATIONS_USERS", "clerk@example.com")
    async with running_stack(tmp_path) as s:
        yield s


def audit(stack: Stack, action: str) -> list[sa.RowMapping]:
    with stack.gateway.engine.connect() as conn:
        return list(conn.execute(sa.select(audit_events).where(audit_events.c.action == action)
                                 .order_by(audit_events.c.at)).mappings())


async def claims(stack: Stack, access: str) -> dict[str, object]:
    keys = KeySet.import_key_set((await stack.http.get("/.well-known/jwks.json")).json())
    return dict(jwt.decode(access, keys, algorithms=["ES256"]).claims)


class TestRolesNeverComeFromTheEmail:
    @pytest.mark.parametrize("email", ["admin@psconnect.local", "ops@psconnect.local", "boss@example.com",
                                       "clerk@example.com"])
    async def test_signing_up_with_a_privileged_address_grants_no_role(self, stack: Stack, email: str) -> None:
        async with browser(stack) as client:
            await sign_up(client, email)
            assert (await client.get("/portal/admin")).status_code == 403
            assert (await client.get("/console")).status_code == 403
            page = (await client.get("/portal/apps")).text
            assert 'href="/portal/admin"' not in page and 'href="/console"' not in page

    async def test_an_unconfirmed_account_cannot_register_until_it_opens_the_logged_link(self, stack: Stack) -> None:
        async with browser(stack) as client:
            await sign_up(client, "new@example.com")
            page = (await client.get("/portal/apps")).text
            assert "Confirm your email" in page
            refused = await client.post("/portal/apps", data={"csrf_token": csrf(page), "name": "x", "plan": "bronze",
                                                              "scope": "process.provisioning:read"})
            assert refused.status_code == 403 and "confirmation link" in refused.text
            assert "No applications yet" in (await client.get("/portal/apps")).text
            link = httpx.URL(MAILBOX.link("new@example.com"))
            assert link.path == "/portal/confirm"
            tampered = await client.get("/portal/confirm", params={"token": link.params["token"][:-2] + "xx"})
            assert tampered.status_code == 400 and "not valid" in tampered.text
            assert (await client.get(link.raw_path.decode())).status_code == 200
            await register(client)  # now it may

    async def test_an_expired_confirmation_link_is_refused(self, stack: Stack) -> None:
        async with browser(stack) as client:
            await sign_up(client, "late@example.com")
            server_accounts = Accounts(stack.gateway.engine)  # the server's own signing key, a link 1 s too old
            account = server_accounts.by_email("late@example.com")
            expired = server_accounts.links.issue("confirm_email", f"{account.id} {account.email}",
                                                  dt.timedelta(seconds=-1))
            answer = await client.get("/portal/confirm", params={"token": expired})
            assert answer.status_code == 400 and "expired" in answer.text
            assert not server_accounts.by_email("late@example.com").email_confirmed

    async def test_the_first_admin_comes_from_a_one_time_enrolment_link(self, stack: Stack) -> None:
        code, out, _ = psconnect(stack, "accounts", "bootstrap")
        assert code == 0
        link = httpx.URL(re.findall(r"https?://\S+/portal/enrol\?token=\S+", out)[0])
        async with browser(stack) as anonymous:
            assert "Sign in" in (await anonymous.get(link.raw_path.decode())).text
            assert (await anonymous.post("/portal/enrol", data={"token": link.params["token"]})).status_code == 401
        async with browser(stack) as first, browser(stack) as second:
            await sign_up(first, "first@example.com")
            page = (await first.get(link.raw_path.decode())).text
            done = await first.post("/portal/enrol", data={"csrf_token": csrf(page), "token": link.params["token"]})
            assert done.status_code == 200 and str(done.url).endswith("/portal/admin")
            await sign_up(second, "second@example.com")
            second_page = (await second.get("/portal/apps")).text
            again = await second.post("/portal/enrol", data={"csrf_token": csrf(second_page),
                                                             "token": link.params["token"]})
            assert again.status_code == 409
            assert (await second.get("/portal/admin")).status_code == 403
        assert psconnect(stack, "accounts", "bootstrap")[0] == 2  # an admin exists: no more enrolment links
        [granted] = audit(stack, "grant_role")
        assert granted["actor"] == "first@example.com (enrolment link)"
        assert granted["changes"]["role"] == [None, "admin"]

    async def test_roles_are_granted_and_revoked_by_an_admin_and_each_change_is_audited(self, stack: Stack) -> None:
        async with browser(stack) as admin, browser(stack) as clerk:
            await make_admin(admin, stack, "boss@example.com")
            await sign_up(clerk, "clerk@example.com")
            assert (await clerk.get("/console")).status_code == 403
            page = (await admin.get("/portal/admin")).text
            clerk_id = stack_account_id(stack, "clerk@example.com")
            assert f'action="/portal/admin/accounts/{clerk_id}/roles"' in page
            await admin.post(f"/portal/admin/accounts/{clerk_id}/roles",
                             data={"csrf_token": csrf(page), "role": "operations", "action": "grant"})
            assert (await clerk.get("/console")).status_code == 200
            refused = await clerk.post(f"/portal/admin/accounts/{clerk_id}/roles",
                                       data={"csrf_token": csrf((await clerk.get("/portal/apps")).text),
                                             "role": "admin", "action": "grant"})
            assert refused.status_code == 403  # operations staff cannot make themselves admin
            await admin.post(f"/portal/admin/accounts/{clerk_id}/roles",
                             data={"csrf_token": csrf(page), "role": "operations", "action": "revoke"})
            assert (await clerk.get("/console")).status_code == 403
        grants, revokes = audit(stack, "grant_role"), audit(stack, "revoke_role")
        assert [(g["actor"].split(":")[0], g["changes"]["role"]) for g in grants] == [
            ("psconnect-cli", [None, "admin"]), ("boss@example.com", [None, "operations"])]
        assert [(r["actor"], r["entity_id"], r["changes"]["role"]) for r in revokes] == [
            ("boss@example.com", clerk_id, ["operations", None])]
        code, _, err = psconnect(stack, "accounts", "revoke", "--email", "boss@example.com", "--role", "admin")
        assert code == 2 and "last admin" in err


def stack_account_id(stack: Stack, email: str) -> str:
    with stack.gateway.engine.connect() as conn:
        return str(conn.execute(sa.select(accounts.c.id).where(accounts.c.email == email)).scalar_one())


class TestSelfServiceScopes:
    async def test_finance_writes_wait_for_an_admin_who_may_restrict_the_legal_entities(self, stack: Stack) -> None:
        async with browser(stack) as dev, browser(stack) as admin:
            await sign_up_confirmed(dev)
            app_id, client_id, secret = await register(dev, scopes=FINANCE_WRITE)
            app_page = (await dev.get(f"/portal/apps/{app_id}")).text
            assert '<code id="scopes">process.time_to_bill:read</code>' in app_page
            assert "process.time_to_bill:write system.erp:write" in app_page  # awaiting approval
            issued = await token(stack, client_id, secret)
            assert issued.json()["scope"] == "process.time_to_bill:read"
            asked = await stack.http.post("/oauth2/token", auth=(client_id, secret), headers={"Authorization": ""},
                                          data={"grant_type": "client_credentials", "scope": "system.erp:write"})
            assert asked.status_code == 400 and asked.json()["error"] == "invalid_scope"
            bearer = {"Authorization": f"Bearer {issued.json()['access_token']}", "Idempotency-Key": "k-1"}
            run = await stack.http.post("/process/time-to-bill/v1/billing-runs", headers=bearer,
                                        json={"legal_entity_code": "US01", "period": "2026-10"})
            assert run.status_code == 403

            await make_admin(admin, stack)
            queue = (await admin.get("/portal/admin")).text
            assert 'class="requested">process.time_to_bill:write system.erp:write<' in queue
            await admin.post(f"/portal/admin/apps/{app_id}/decision",
                             data={"csrf_token": csrf(queue), "decision": "approve", "legal_entities": "UK01"})
        approved = (await token(stack, client_id, secret)).json()
        assert approved["scope"].split() == list(FINANCE_WRITE)
        assert (await claims(stack, approved["access_token"]))["legal_entities"] == ["UK01"]
        [decision] = audit(stack, "approve_scopes")
        assert decision["actor"] == "boss@example.com"
        assert audit(stack, "restrict_legal_entities")[0]["changes"]["legal_entities"] == [None, "UK01"]

    async def test_reads_are_self_service_and_an_app_may_ask_for_a_legal_entity_restriction(
            self, stack: Stack) -> None:
        async with browser(stack) as dev:
            await sign_up_confirmed(dev)
            _, client_id, secret = await register(dev, scopes=("process.time_to_bill:read",
                                                               "experience.dashboards:read"), legal_entities="uk01")
        issued = (await token(stack, client_id, secret)).json()
        assert issued["scope"] == "process.time_to_bill:read experience.dashboards:read"
        assert (await claims(stack, issued["access_token"]))["legal_entities"] == ["UK01"]

    async def test_a_rejected_request_leaves_the_client_with_its_reads(self, stack: Stack) -> None:
        async with browser(stack) as dev, browser(stack) as admin:
            await sign_up_confirmed(dev)
            app_id, client_id, secret = await register(dev, scopes=("experience.workbench:read",
                                                                    "experience.workbench:write"))
            await make_admin(admin, stack)
            queue = (await admin.get("/portal/admin")).text
            await admin.post(f"/portal/admin/apps/{app_id}/decision",
                             data={"csrf_token": csrf(queue), "decision": "reject"})
            assert "No pending requests" in (await admin.get("/portal/admin")).text
        assert (await token(stack, client_id, secret)).json()["scope"] == "experience.workbench:read"


async def test_clients_create_refuses_scopes_that_no_api_declares(stack: Stack) -> None:
    code, out, err = psconnect(stack, "clients", "create", "--name", "typo", "--scope", "system.erp:read",
                               "--scope", "system.erp:wrte", "--client-id", "typo-client")
    assert code == 2 and "system.erp:wrte" in err and out == ""
    with stack.gateway.engine.connect() as conn:
        assert conn.execute(sa.select(oauth_clients).where(oauth_clients.c.client_id == "typo-client")).first() is None
    code, out, _ = psconnect(stack, "clients", "create", "--name", "fine", "--scope", "system.erp:read",
                             "--client-id", "fine-client")
    assert code == 0 and '"client_id": "fine-client"' in out
