"""Routing by legal entity through the gateway: the shipped connections file puts the acquired CA01 on its own
accounts (their own simulators), so what CA01 writes lands in CA01's systems and nowhere else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.stack import ALL_SCOPES, Stack, running_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as s:
        yield s


async def _all(stack: Stack, path: str, **params: str) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await stack.http.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return items


async def test_each_entity_reads_its_own_account_and_lists_merge_every_account(stack: Stack) -> None:
    entities = await _all(stack, "/system/erp/v1/legal-entities")
    assert sorted(str(e["code"]) for e in entities) == ["AU01", "CA01", "DE01", "UK01", "US01"]
    ca01 = next(e for e in entities if e["code"] == "CA01")
    assert str(ca01["id"]).startswith("ca01-erp:")  # another account's id names its connection
    assert {e["code"] for e in entities if ":" not in str(e["id"])} == {"US01", "UK01", "DE01"}  # default: unchanged

    only = await _all(stack, "/system/erp/v1/legal-entities", legal_entity="CA01")
    assert [e["code"] for e in only] == ["CA01"]
    assert (await stack.http.get(f"/system/erp/v1/legal-entities/{ca01['id']}")).json()["code"] == "CA01"

    workers = await _all(stack, "/system/hr/v1/workers", limit="100")
    ca_workers = [w for w in workers if w["legal_entity_code"] == "CA01"]
    assert len(workers) == 240 + 24 + 8 and len(ca_workers) == 24
    assert all(str(w["id"]).startswith("ca01-hr:") for w in ca_workers)
    assert not any(":" in str(w["id"]) for w in workers if w["legal_entity_code"] != "CA01")
    one = await stack.http.get(f"/system/hr/v1/workers/{ca_workers[0]['id']}")
    assert one.status_code == 200 and one.json() == ca_workers[0]


async def test_an_erp_write_for_ca01_lands_in_ca01s_account_only(stack: Stack) -> None:
    [ca01] = await _all(stack, "/system/erp/v1/legal-entities", legal_entity="CA01")
    body = {"name": "Maple Leaf Foods Ltd", "legal_entity_id": ca01["id"], "currency": "CAD",
            "billing_address": {"street": "1 Front Street", "city": "Toronto", "postal_code": "M5J 2X5",
                                "country": "CA"}}
    response = await stack.http.put("/system/erp/v1/customers/by-external-id/ACC-CA-T1", json=body)
    assert response.status_code == 201, response.text
    customer = response.json()
    assert customer["id"].startswith("ca01-erp:") and customer["legal_entity_id"] == ca01["id"]
    assert stack.gateway.simulator("erp", "CA01").count("customers", "ACC-CA-T1") == 1  # CA01's Business Central
    assert stack.sim("erp").count("customer", "ACC-CA-T1") == 0  # not in the firm's own ERP
    au01 = stack.gateway.simulator("erp", "AU01").organisation("AU01")  # nor in AU01's Xero
    assert not [c for c in au01.contacts.values() if c.get("ContactNumber") == "ACC-CA-T1"]
    again = await stack.http.get(f"/system/erp/v1/customers/{customer['id']}")
    assert again.status_code == 200 and again.json()["name"] == "Maple Leaf Foods Ltd"


async def test_an_acquired_entitys_periods_are_listed_by_its_id_with_or_without_the_entity(stack: Stack) -> None:
    [ca01] = await _all(stack, "/system/erp/v1/legal-entities", legal_entity="CA01")
    alone = await _all(stack, "/system/erp/v1/accounting-periods", legal_entity_id=str(ca01["id"]))
    both = await _all(stack, "/system/erp/v1/accounting-periods", legal_entity_id=str(ca01["id"]), legal_entity="CA01")
    assert len(alone) == 12 and both == alone  # naming the entity too once lost the id's prefix: nothing listed
    assert {p["legal_entity_id"] for p in both} == {ca01["id"]}


async def test_the_legal_entity_parameter_must_be_an_entity_code(stack: Stack) -> None:
    response = await stack.http.get("/system/erp/v1/projects", params={"legal_entity": "ZZ"})
    assert response.status_code == 422 and response.json()["errors"][0]["pointer"] == "legal_entity"


async def test_a_ca01_deal_is_provisioned_into_ca01s_own_erp_and_psa(stack: Stack) -> None:
    won = await _all(stack, "/system/crm/v1/opportunities", stage="closed_won", legal_entity="CA01")
    assert won and all(str(o["id"]).startswith("ca01-crm:") for o in won)  # the id names its CRM account
    run = await stack.provision(str(won[0]["id"]))
    assert run["status"] == "succeeded", run
    subject = run["subject"]
    for domain in ("erp", "psa"):  # one project in each of CA01's own accounts (Business Central, Certinia)
        own = await _all(stack, f"/system/{domain}/v1/projects", external_id=f"PRJ-{subject}", legal_entity="CA01")
        assert len(own) == 1 and str(own[0]["id"]).startswith(("ca01-erp:", "ca01-certinia:")), own
    assert stack.sim("erp").count("job", f"PRJ-{subject}") == 0 and stack.sim("psa").count(
        "workspace", f"PRJ-{subject}") == 0
    project = (await stack.http.get(f"/system/erp/v1/projects/{run['result']['erp_project_id']}")).json()
    assert project["currency"] == "CAD" and project["legal_entity_id"].startswith("ca01-erp:")


async def test_a_restricted_caller_naming_another_entitys_system_is_refused(stack: Stack) -> None:
    client_id, secret = stack.gateway.oauth.clients.create("routing grant", ALL_SCOPES, legal_entities=["UK01"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.gateway.app),  # type: ignore[arg-type]
                                 base_url="http://testserver") as uk:
        token = await uk.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
        uk.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        refused = await uk.get("/system/hr/v1/workers", params={"legal_entity": "CA01"})
        assert refused.status_code == 403, refused.text
        mine = await uk.get("/system/hr/v1/workers", params={"legal_entity": "UK01", "limit": 100})
        assert mine.status_code == 200 and {w["legal_entity_code"] for w in mine.json()["items"]} == {"UK01"}
        merged = await uk.get("/system/erp/v1/legal-entities")  # every account merged, the grant still applies
        assert [e["code"] for e in merged.json()["items"]] == ["UK01"]


async def test_a_merged_lists_cursor_is_its_own(stack: Stack) -> None:
    first = (await stack.http.get("/system/hr/v1/workers", params={"limit": 100})).json()
    cursor = first["next_cursor"]
    following = await stack.http.get("/system/hr/v1/workers", params={"limit": 100, "cursor": cursor})
    assert following.status_code == 200 and following.json()["items"][0]["id"] != first["items"][0]["id"]
    other_list = await stack.http.get("/system/hr/v1/cost-centers", params={"cursor": cursor})
    assert other_list.status_code == 422 and other_list.json()["code"] == "invalid_cursor"
    forged = await stack.http.get("/system/hr/v1/workers", params={"cursor": "bm90LWEtY3Vyc29y"})
    assert forged.status_code == 422 and forged.json()["code"] == "invalid_cursor"
