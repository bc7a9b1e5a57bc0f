"""A client restricted to UK01 × every operation of every published API: it never touches another entity.

The operations are read from the published documents (`contracts/openapi/*.json`), so a new
operation fails `test_every_published_operation_is_in_the_matrix` until it is given a check
here or listed in `NO_ENTITY` with the reason it has no legal-entity dimension. For each
operation the check asserts, as applies: a list holds only UK01 records; naming US01 in a
filter is a 403 `legal_entity_forbidden`; fetching a US01 record by id is a 404; a write
aimed at US01 is a 403 and an unrestricted read afterwards shows nothing changed. The demo
firm has three entities (US01, UK01, DE01); October is billed for UK01 and US01 first.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.integration.process_apis.time_to_bill.ttb_stack import PERIOD, TtbStack, ttb_stack
from tests.stack import ALL_SCOPES

pytestmark = [pytest.mark.slow]
on_stack = pytest.mark.asyncio(loop_scope="module")

MINE, OTHER = "UK01", "US01"
DOCS = Path(__file__).resolve().parents[2] / "contracts" / "openapi"

NO_ENTITY = {
    "gateway.getJwks": "the token-signing keys: public, the same for every client",
    "gateway.getAuthorizationServerMetadata": "OAuth discovery metadata: public, no business data",
    "gateway.issueToken": "issues the caller's own token (its grant travels in it); no entity's data",
    "erp.getCapabilities": "how the ERP holds posted time (per entry or summarised): no entity's records",
}


def published_operations() -> dict[str, tuple[str, str]]:
    """operationId -> (method, path) of every operation in every published document."""
    out: dict[str, tuple[str, str]] = {}
    for doc in sorted(DOCS.glob("*.json")):
        for path, methods in json.loads(doc.read_text())["paths"].items():
            for method, op in methods.items():
                if method in ("get", "put", "post", "patch", "delete"):
                    out[op["operationId"]] = (method.upper(), path)
    return out


@dataclass
class World:
    """The stack, an unrestricted client (`admin`), the UK01-only client (`uk`) and what the admin saw."""

    s: TtbStack
    uk: httpx.AsyncClient
    entity_of_le: dict[str, str] = field(default_factory=dict)  # ERP legal-entity id (or code) -> code
    project_entity: dict[str, str] = field(default_factory=dict)  # ERP project external id -> code
    erp_projects: dict[str, dict[str, Any]] = field(default_factory=dict)  # code -> one ERP project
    opportunity_entity: dict[str, str | None] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def admin(self) -> httpx.AsyncClient:
        return self.s.http

    async def all(self, client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            response = await client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
            assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
            items += response.json()["items"]
            cursor = response.json().get("next_cursor")
            if not cursor:
                return items


@contextlib.asynccontextmanager
async def restricted_client(s: TtbStack, entities: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    gw = s.stack.gateway
    client_id, secret = gw.oauth.clients.create("grant matrix", ALL_SCOPES, legal_entities=entities)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app),  # type: ignore[arg-type]
                                 base_url="http://testserver", timeout=60) as http:
        token = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
        assert token.status_code == 200, token.text
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield http


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def w(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with ttb_stack(Path(tmp_path_factory.mktemp("grants"))) as s, restricted_client(s, [MINE]) as uk:
        world = World(s=s, uk=uk)
        for entity in (MINE, OTHER):
            run = await s.bill(entity)
            assert run["status"] in ("succeeded", "needs_attention"), run
        admin = s.http
        entities = await world.all(admin, "/system/erp/v1/legal-entities")
        world.entity_of_le = {**{e["id"]: e["code"] for e in entities}, **{e["code"]: e["code"] for e in entities}}
        world.ids.update({f"le:{e['code']}": e["id"] for e in entities})
        for p in await world.all(admin, "/system/erp/v1/projects", limit=200):
            code = world.entity_of_le[p["legal_entity_id"]]
            world.project_entity[p["external_id"]] = code
            world.erp_projects.setdefault(code, p)
        opportunities = await world.all(admin, "/system/crm/v1/opportunities", limit=200)
        world.opportunity_entity = {o["id"]: o["legal_entity_code"] for o in opportunities}
        for code in (MINE, OTHER):  # one opportunity of each entity provisioned through to its event
            opp = next(o for o in opportunities if o["legal_entity_code"] == code and o["stage"] == "closed_won")
            run = await s.stack.provision(opp["id"])
            if run["status"] == "needs_attention":  # UK01's only won deal is OPP-0003: its account lacks a VAT id
                account = (await admin.get(f"/system/crm/v1/accounts/{opp['account_id']}")).json()
                fixed = {k: account[k] for k in ("name", "billing_address", "currency")} | {"tax_id": "GB999999973"}
                put = await admin.put(f"/system/crm/v1/accounts/by-external-id/{account['external_id']}", json=fixed)
                assert put.status_code == 200, put.text
                replay = await admin.post(f"/process/provisioning/v1/exceptions/{run['exception_id']}/replay")
                assert replay.status_code == 202, replay.text
                run = await s.stack.wait(run["id"])
            assert run["status"] == "succeeded", run
            world.ids[f"opp:{code}"], world.ids[f"prov_run:{code}"] = opp["id"], run["id"]
        bad = await s.stack.provision("OPP-0009")  # currency mismatch, booked to US01: an exception
        assert bad["status"] == "needs_attention", bad
        world.ids["prov_exception:US01"] = bad["exception_id"]
        sync = await admin.post("/process/worker-sync/v1/runs", json={"full": False},
                                headers={"Idempotency-Key": str(uuid.uuid4())})
        assert sync.status_code in (200, 202), sync.text
        world.ids["sync_run"] = sync.json()["id"]
        invoices = await world.all(admin, "/system/erp/v1/invoices", limit=200)
        for code in (MINE, OTHER):  # one invoice of each entity posted to receivables, so AR has something open
            one = next(i for i in invoices if world.entity_of_le[i["legal_entity_id"]] == code)
            posted = await admin.post(f"/system/erp/v1/invoices/by-external-id/{one['external_id']}/post")
            assert posted.status_code == 200, posted.text
        poll = await admin.post("/process/receivables/v1/runs", json={"full": False},
                                headers={"Idempotency-Key": str(uuid.uuid4())})
        assert poll.status_code == 202, poll.text
        assert (await s.stack.wait_for(f"/process/receivables/v1/runs/{poll.json()['id']}"))["status"] == "succeeded"
        world.ids["rcv_run"] = poll.json()["id"]
        for p in await world.all(admin, "/system/erp/v1/projects", limit=200):  # provisioning added some
            world.project_entity[p["external_id"]] = world.entity_of_le[p["legal_entity_id"]]
        for code in (MINE, OTHER):  # the gateway's PSA holds no time: a pending timesheet per entity
            psa = (await admin.get("/system/psa/v1/projects",
                                   params={"external_id": world.erp_projects[code]["external_id"]})).json()["items"]
            submit_time(s, psa[0])
        yield world


def submit_time(s: TtbStack, project: dict[str, Any]) -> None:
    """One PSA time entry on `project`, submitted for approval (the Kantata simulator's own tables)."""
    sim = s.sim("psa")
    user = next(iter(sim.tables["users"]))
    entry = sim._insert("time_entries", {
        "workspace_id": project["id"], "user_id": user, "date_performed": "2026-10-05", "time_in_minutes": 60,
        "billable": True, "approved": False, "notes": "grant matrix", "story_id": None, "invoice_id": None,
        "rate_in_cents": 10000, "currency": project["budget"]["currency"], "currency_base_unit": 100,
        "timesheet_submission_id": None})
    sim.add_submission(project["id"], user, "2026-10-05", "2026-10-11", [entry], "pending")


# --- attribution of records, as the admin sees them ------------------------------------------------------------


def only_mine(w: World, items: list[dict[str, Any]], entity: Callable[[dict[str, Any]], str | None]) -> None:
    strays = [i for i in items if entity(i) != MINE]
    assert not strays, f"{len(strays)} of {len(items)} items are not {MINE}'s: {strays[:2]}"


async def forbidden(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "legal_entity_forbidden", response.text


def missing(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text


Check = Callable[[World], Awaitable[None]]
CHECKS: dict[str, Check] = {}


def check(operation_id: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[operation_id] = fn
        return fn
    return register


def project_of_other(w: World) -> dict[str, Any]:
    return w.erp_projects[OTHER]


# --- ERP ---------------------------------------------------------------------------------------------------------

@check("erp.listLegalEntities")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/erp/v1/legal-entities")
    assert [i["code"] for i in items] == [MINE]


@check("erp.getLegalEntity")
async def _(w: World) -> None:
    missing(await w.uk.get(f"/system/erp/v1/legal-entities/{w.ids['le:' + OTHER]}"))
    assert (await w.uk.get(f"/system/erp/v1/legal-entities/{w.ids['le:' + MINE]}")).status_code == 200


@check("erp.getCustomer")
async def _(w: World) -> None:
    missing(await w.uk.get(f"/system/erp/v1/customers/{project_of_other(w)['customer_id']}"))
    mine = await w.uk.get(f"/system/erp/v1/customers/{w.erp_projects[MINE]['customer_id']}")
    assert mine.status_code == 200, mine.text


@check("erp.upsertCustomer")
async def _(w: World) -> None:
    customer = (await w.admin.get(f"/system/erp/v1/customers/{project_of_other(w)['customer_id']}")).json()
    body = {"name": "Renamed by UK01", "legal_entity_id": customer["legal_entity_id"], "currency": customer["currency"]}
    await forbidden(await w.uk.put(f"/system/erp/v1/customers/by-external-id/{customer['external_id']}", json=body))
    after = (await w.admin.get(f"/system/erp/v1/customers/{customer['id']}")).json()
    assert after == customer


@check("erp.listProjects")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/erp/v1/projects", limit=200)
    assert items
    only_mine(w, items, lambda p: w.entity_of_le[p["legal_entity_id"]])
    assert (await w.uk.get("/system/erp/v1/projects",
                           params={"external_id": project_of_other(w)["external_id"]})).json()["items"] == []


@check("erp.getProject")
async def _(w: World) -> None:
    missing(await w.uk.get(f"/system/erp/v1/projects/{project_of_other(w)['id']}"))
    assert (await w.uk.get(f"/system/erp/v1/projects/{w.erp_projects[MINE]['id']}")).status_code == 200


@check("erp.upsertProject")
async def _(w: World) -> None:
    other = project_of_other(w)
    body = {k: other[k] for k in ("customer_id", "legal_entity_id", "currency", "budget")} | {"name": "Taken over"}
    await forbidden(await w.uk.put(f"/system/erp/v1/projects/by-external-id/{other['external_id']}", json=body))
    # nor moved to its own entity
    moved = body | {"legal_entity_id": w.ids["le:" + MINE]}
    await forbidden(await w.uk.put(f"/system/erp/v1/projects/by-external-id/{other['external_id']}", json=moved))
    assert (await w.admin.get(f"/system/erp/v1/projects/{other['id']}")).json() == other


@check("erp.listAccountingPeriods")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/erp/v1/accounting-periods", limit=200)
    assert items
    only_mine(w, items, lambda p: w.entity_of_le[p["legal_entity_id"]])
    await forbidden(await w.uk.get("/system/erp/v1/accounting-periods",
                                   params={"legal_entity_id": w.ids["le:" + OTHER]}))


@check("erp.upsertEmployee")
async def _(w: World) -> None:
    body = {"name": "Someone", "email": "someone@meridian.example", "legal_entity_id": w.ids["le:" + OTHER],
            "cost_center": "CC-US01-1", "cost_rate": {"amount": "100.00", "currency": "USD"}, "active": True}
    await forbidden(await w.uk.put("/system/erp/v1/employees/by-external-id/W-NEW-0001", json=body))


def posting(w: World, project: dict[str, Any], le: str) -> dict[str, Any]:
    line = {"line_key": f"grant-matrix-{uuid.uuid4().hex[:8]}:1", "project_external_id": project["external_id"],
            "employee_external_id": "W-00001", "date": "2026-10-05", "hours": "1.0",
            "rate": {"amount": "100.00", "currency": project["currency"]},
            "amount": {"amount": "100.00", "currency": project["currency"]}, "billable": True}
    return {"batch_key": f"grant-matrix-{uuid.uuid4().hex}", "legal_entity_id": le, "lines": [line]}


@check("erp.postTime")
async def _(w: World) -> None:
    before = len(w.s.time_bills())
    other = project_of_other(w)
    await forbidden(await w.uk.post("/system/erp/v1/time-postings", json=posting(w, other, other["legal_entity_id"])))
    # a batch declared as UK01's but carrying a US01 project's line is refused too
    await forbidden(await w.uk.post("/system/erp/v1/time-postings",
                                    json=posting(w, other, w.ids["le:" + MINE])))
    assert len(w.s.time_bills()) == before


@check("erp.getTimePosting")
async def _(w: World) -> None:
    batch = posting(w, project_of_other(w), project_of_other(w)["legal_entity_id"])
    posted = await w.admin.post("/system/erp/v1/time-postings", json=batch)
    assert posted.status_code == 202, posted.text
    assert (await w.admin.get(f"/system/erp/v1/time-postings/{batch['batch_key']}")).status_code == 200
    missing(await w.uk.get(f"/system/erp/v1/time-postings/{batch['batch_key']}"))


@check("erp.listPostedTime")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/erp/v1/posted-time", limit=1000)
    assert items
    only_mine(w, items, lambda t: w.project_entity.get(t["project_external_id"]))


@check("erp.listPostedTimeTotals")
async def _(w: World) -> None:
    totals = await w.all(w.uk, "/system/erp/v1/posted-time/totals", limit=1000)
    assert totals
    only_mine(w, totals, lambda t: w.project_entity.get(t["project_external_id"]))


def expense_batch(project: dict[str, Any], le: str) -> dict[str, Any]:
    line = {"line_key": f"grant-matrix-x{uuid.uuid4().hex[:8]}:1", "project_external_id": project["external_id"],
            "employee_external_id": "W-00001", "date": "2026-10-05", "category": "Travel",
            "amount": {"amount": "40.00", "currency": project["currency"]}, "billable": True}
    return {"batch_key": f"grant-matrix-x{uuid.uuid4().hex}", "legal_entity_id": le, "lines": [line]}


@check("erp.postExpenses")
async def _(w: World) -> None:
    before = await w.all(w.admin, "/system/erp/v1/posted-expenses", limit=1000)
    other = project_of_other(w)
    await forbidden(await w.uk.post("/system/erp/v1/expense-postings",
                                    json=expense_batch(other, other["legal_entity_id"])))
    await forbidden(await w.uk.post("/system/erp/v1/expense-postings",  # UK01's batch, a US01 project's line
                                    json=expense_batch(other, w.ids["le:" + MINE])))
    assert await w.all(w.admin, "/system/erp/v1/posted-expenses", limit=1000) == before


@check("erp.getExpensePosting")
async def _(w: World) -> None:
    other = project_of_other(w)
    batch = expense_batch(other, other["legal_entity_id"])
    posted = await w.admin.post("/system/erp/v1/expense-postings", json=batch)
    assert posted.status_code == 200 and posted.json()["posted"], posted.text
    missing(await w.uk.get(f"/system/erp/v1/expense-postings/{batch['batch_key']}"))


@check("erp.listPostedExpenses")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/erp/v1/posted-expenses", limit=1000)
    assert items
    only_mine(w, items, lambda x: w.project_entity.get(x["project_external_id"]))


@check("erp.upsertIntercompanyCharge")
async def _(w: World) -> None:
    other = project_of_other(w)
    money = {"amount": "10.00", "currency": "GBP"}
    line = {"line_key": "grant-matrix-ic:1", "project_external_id": other["external_id"],
            "employee_external_id": "W-00005", "date": "2026-10-05", "hours": "1", "transfer_rate": money,
            "amount": money}
    body = {"legal_entity_id": other["legal_entity_id"], "counterparty": MINE, "side": "payable", "period": PERIOD,
            "currency": "GBP", "lines": [line]}
    before = await w.all(w.admin, "/system/erp/v1/intercompany-charges", period=PERIOD)
    await forbidden(await w.uk.put("/system/erp/v1/intercompany-charges/by-external-id/IC-GRANT-1", json=body))
    mine = {**body, "legal_entity_id": w.ids["le:" + MINE], "counterparty": OTHER, "side": "receivable"}
    await forbidden(await w.uk.put("/system/erp/v1/intercompany-charges/by-external-id/IC-GRANT-2", json=mine))
    assert await w.all(w.admin, "/system/erp/v1/intercompany-charges", period=PERIOD) == before


@check("erp.listIntercompanyCharges")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/erp/v1/intercompany-charges", period=PERIOD)
    assert items  # UK01's receivable from US01 and its payable to DE01 (the demo's secondments)
    only_mine(w, items, lambda c: w.entity_of_le[c["legal_entity_id"]])
    everything = await w.all(w.admin, "/system/erp/v1/intercompany-charges", period=PERIOD)
    assert len(everything) > len(items)


@check("erp.upsertInvoice")
async def _(w: World) -> None:
    other = project_of_other(w)
    money = {"amount": "10.00", "currency": other["currency"]}
    body = {"customer_id": other["customer_id"], "project_external_id": other["external_id"],
            "legal_entity_id": other["legal_entity_id"], "period": PERIOD, "currency": other["currency"],
            "lines": [{"kind": "time", "description": "x", "quantity": "1", "unit_price": money, "amount": money}]}
    before = await w.all(w.admin, "/system/erp/v1/invoices", limit=200)
    await forbidden(await w.uk.put("/system/erp/v1/invoices/by-external-id/INV-GRANT-1", json=body))
    assert await w.all(w.admin, "/system/erp/v1/invoices", limit=200) == before


@check("erp.listInvoices")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/erp/v1/invoices", limit=200)
    assert items
    only_mine(w, items, lambda i: w.entity_of_le[i["legal_entity_id"]])


async def invoice_of(w: World, entity: str) -> dict[str, Any]:
    invoice: dict[str, Any] = next(i for i in await w.all(w.admin, "/system/erp/v1/invoices", limit=200)
                                   if w.entity_of_le[i["legal_entity_id"]] == entity)
    return invoice


@check("erp.getInvoice")
async def _(w: World) -> None:
    missing(await w.uk.get(f"/system/erp/v1/invoices/by-external-id/{(await invoice_of(w, OTHER))['external_id']}"))
    mine = (await invoice_of(w, MINE))["external_id"]
    assert (await w.uk.get(f"/system/erp/v1/invoices/by-external-id/{mine}")).status_code == 200


@check("erp.postInvoice")
async def _(w: World) -> None:
    other = await invoice_of(w, OTHER)
    path = f"/system/erp/v1/invoices/by-external-id/{other['external_id']}"
    before = (await w.admin.get(path)).json()
    missing(await w.uk.post(f"{path}/post"))
    assert (await w.admin.get(path)).json() == before


@check("erp.upsertPayment")
async def _(w: World) -> None:
    other = await invoice_of(w, OTHER)
    path = f"/system/erp/v1/invoices/by-external-id/{other['external_id']}"
    before = (await w.admin.get(path)).json()
    body = {"invoice_external_id": other["external_id"], "legal_entity_id": other["legal_entity_id"],
            "date": "2026-11-20", "amount": {"amount": "1.00", "currency": other["currency"]}}
    await forbidden(await w.uk.put("/system/erp/v1/payments/by-external-id/PAY-GRANT-1", json=body))
    aimed = {**body, "legal_entity_id": w.ids["le:" + MINE]}  # my entity, another's invoice
    missing(await w.uk.put("/system/erp/v1/payments/by-external-id/PAY-GRANT-2", json=aimed))
    assert (await w.admin.get(path)).json() == before


@check("erp.getExchangeRate")
async def _(w: World) -> None:
    params = {"on": "2026-10-31"}
    await forbidden(await w.uk.get("/system/erp/v1/exchange-rates/EUR/USD", params={**params, "legal_entity": OTHER}))
    mine = await w.uk.get("/system/erp/v1/exchange-rates/EUR/GBP", params={**params, "legal_entity": MINE})
    assert mine.status_code == 200, mine.text


@check("erp.upsertCreditMemo")
async def _(w: World) -> None:
    other = project_of_other(w)
    money = {"amount": "-10.00", "currency": other["currency"]}
    body = {"customer_id": other["customer_id"], "project_external_id": other["external_id"],
            "legal_entity_id": other["legal_entity_id"], "period": PERIOD, "currency": other["currency"],
            "invoice_external_id": "INV-X", "reason": "grant matrix",
            "lines": [{"kind": "credit", "description": "x", "quantity": "1", "unit_price": money, "amount": money}]}
    before = await w.all(w.admin, "/system/erp/v1/credit-memos", limit=200)
    await forbidden(await w.uk.put("/system/erp/v1/credit-memos/by-external-id/CM-GRANT-1", json=body))
    assert await w.all(w.admin, "/system/erp/v1/credit-memos", limit=200) == before


@check("erp.listCreditMemos")
async def _(w: World) -> None:
    only_mine(w, await w.all(w.uk, "/system/erp/v1/credit-memos", limit=200),
              lambda m: w.project_entity.get(m["project_external_id"]))


# --- CRM ---------------------------------------------------------------------------------------------------------

async def accounts_with_deals(w: World) -> dict[str, set[str | None]]:
    out: dict[str, set[str | None]] = {}
    for o in await w.all(w.admin, "/system/crm/v1/opportunities", limit=200):
        out.setdefault(o["account_id"], set()).add(o["legal_entity_code"])
    return out


@check("crm.listAccounts")
async def _(w: World) -> None:
    deals = await accounts_with_deals(w)
    items = await w.all(w.uk, "/system/crm/v1/accounts", limit=200)
    assert items
    only_mine(w, items, lambda a: MINE if MINE in deals.get(a["id"], set()) else None)


@check("crm.getAccount")
async def _(w: World) -> None:
    deals = await accounts_with_deals(w)
    theirs = next(a for a, codes in deals.items() if MINE not in codes and OTHER in codes)
    missing(await w.uk.get(f"/system/crm/v1/accounts/{theirs}"))
    mine = next(a for a, codes in deals.items() if MINE in codes)
    assert (await w.uk.get(f"/system/crm/v1/accounts/{mine}")).status_code == 200


@check("crm.upsertAccount")
async def _(w: World) -> None:
    deals = await accounts_with_deals(w)
    theirs = next(a for a, codes in deals.items() if MINE not in codes and OTHER in codes)
    account = (await w.admin.get(f"/system/crm/v1/accounts/{theirs}")).json()
    body = {"name": "Taken over", "billing_address": account["billing_address"], "currency": account["currency"]}
    await forbidden(await w.uk.put(f"/system/crm/v1/accounts/by-external-id/{account['external_id']}", json=body))
    assert (await w.admin.get(f"/system/crm/v1/accounts/{theirs}")).json() == account


@check("crm.listOpportunities")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/crm/v1/opportunities", limit=200)
    assert items
    only_mine(w, items, lambda o: o["legal_entity_code"])


@check("crm.getOpportunity")
async def _(w: World) -> None:
    missing(await w.uk.get(f"/system/crm/v1/opportunities/{w.ids['opp:' + OTHER]}"))
    assert (await w.uk.get(f"/system/crm/v1/opportunities/{w.ids['opp:' + MINE]}")).status_code == 200


# --- HR ----------------------------------------------------------------------------------------------------------

@check("hr.listWorkers")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/hr/v1/workers")
    assert items
    only_mine(w, items, lambda x: x["legal_entity_code"])


@check("hr.getWorker")
async def _(w: World) -> None:
    workers = await w.all(w.admin, "/system/hr/v1/workers")
    theirs = next(x for x in workers if x["legal_entity_code"] == OTHER)
    missing(await w.uk.get(f"/system/hr/v1/workers/{theirs['id']}"))


@check("hr.listCostCenters")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/hr/v1/cost-centers")
    assert items
    only_mine(w, items, lambda x: x["legal_entity_code"])


# --- PSA ---------------------------------------------------------------------------------------------------------

async def psa_project_of(w: World, code: str) -> dict[str, Any]:
    external_id = w.erp_projects[code]["external_id"]
    found = (await w.admin.get("/system/psa/v1/projects", params={"external_id": external_id})).json()["items"]
    assert found, external_id
    project: dict[str, Any] = found[0]
    return project


@check("psa.listProjects")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/psa/v1/projects", limit=200)
    assert items
    only_mine(w, items, lambda p: w.project_entity.get(p["external_id"]))


@check("psa.getProject")
async def _(w: World) -> None:
    missing(await w.uk.get(f"/system/psa/v1/projects/{(await psa_project_of(w, OTHER))['id']}"))
    assert (await w.uk.get(f"/system/psa/v1/projects/{(await psa_project_of(w, MINE))['id']}")).status_code == 200


@check("psa.upsertProject")
async def _(w: World) -> None:
    theirs = await psa_project_of(w, OTHER)
    body = {"title": "Taken over", "client_name": theirs["client_name"], "budget": theirs["budget"],
            "billing_terms": theirs["billing_terms"], "rate_card_id": theirs["rate_card_id"]}
    await forbidden(await w.uk.put(f"/system/psa/v1/projects/by-external-id/{theirs['external_id']}", json=body))
    assert (await w.admin.get(f"/system/psa/v1/projects/{theirs['id']}")).json() == theirs
    # a new project for a US01 opportunity, priced on US01's rate card
    await forbidden(await w.uk.put("/system/psa/v1/projects/by-external-id/PRJ-GRANT-NEW", json=body))
    assert (await w.admin.get("/system/psa/v1/projects", params={"external_id": "PRJ-GRANT-NEW"})).json()["items"] == []


@check("psa.listAssignments")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/psa/v1/assignments", limit=200)
    assert items
    only_mine(w, items, lambda a: w.project_entity.get(a["project_external_id"]))


@check("psa.listRateCards")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/psa/v1/rate-cards")
    assert items
    only_mine(w, items, lambda c: c["legal_entity_code"])
    await forbidden(await w.uk.get("/system/psa/v1/rate-cards", params={"legal_entity_code": OTHER}))


@check("psa.getRateCard")
async def _(w: World) -> None:
    cards = await w.all(w.admin, "/system/psa/v1/rate-cards")
    theirs = next(c for c in cards if c["legal_entity_code"] == OTHER)
    missing(await w.uk.get(f"/system/psa/v1/rate-cards/{theirs['id']}"))


@check("psa.upsertUser")
async def _(w: World) -> None:
    workers = await w.all(w.admin, "/system/hr/v1/workers")
    theirs = next(x for x in workers if x["legal_entity_code"] == OTHER)
    body = {"name": "Renamed", "email": theirs["email"], "role": theirs["role"], "practice": theirs["practice"],
            "cost_rate": theirs["cost_rate"], "active": False}
    await forbidden(await w.uk.put(f"/system/psa/v1/users/by-external-id/{theirs['id']}", json=body))


@check("psa.listTimeEntries")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/psa/v1/time-entries", limit=200, **{"from": "2026-10-01", "to": "2026-10-07"})
    assert items
    only_mine(w, items, lambda e: w.project_entity.get(e["project_code"]))


@check("psa.listTimesheetSubmissions")
async def _(w: World) -> None:
    only_mine(w, await w.all(w.uk, "/system/psa/v1/timesheet-submissions", limit=200),
              lambda t: w.project_entity.get(t["project_external_id"]))


@check("psa.decideTimesheet")
async def _(w: World) -> None:
    submissions = await w.all(w.admin, "/system/psa/v1/timesheet-submissions", limit=200)
    theirs = [t for t in submissions if w.project_entity.get(t["project_external_id"]) == OTHER]
    assert theirs, "the demo firm has US01 timesheet submissions"
    target = theirs[0]
    missing(await w.uk.post(f"/system/psa/v1/timesheet-submissions/{target['id']}/decision",
                            json={"decision": "rejected" if target["status"] != "rejected" else "approved"}))
    after = await w.all(w.admin, "/system/psa/v1/timesheet-submissions", limit=200)
    assert next(t for t in after if t["id"] == target["id"]) == target


# --- time --------------------------------------------------------------------------------------------------------

@check("time.listTimeEntries")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/time/v1/time-entries", limit=2000, **{"from": "2026-10-01", "to": "2026-10-07"})
    assert items
    only_mine(w, items, lambda e: w.project_entity.get(e["project_code"]))


@check("time.getTimeEntry")
async def _(w: World) -> None:
    entries = (await w.admin.get("/system/time/v1/time-entries", params={
        "from": "2026-10-01", "to": "2026-10-02", "project_code": project_of_other(w)["external_id"]})).json()["items"]
    assert entries
    missing(await w.uk.get(f"/system/time/v1/time-entries/{entries[0]['id']}"))


@check("time.listExpenses")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/time/v1/expenses", limit=2000, **{"from": "2026-10-01", "to": "2026-10-31"})
    assert items
    only_mine(w, items, lambda x: w.project_entity.get(x["project_code"]))


@check("time.getExpense")
async def _(w: World) -> None:
    expenses = await w.all(w.admin, "/system/time/v1/expenses", **{"from": "2026-10-01", "to": "2026-10-31"})
    others = [x for x in expenses if w.project_entity.get(x["project_code"]) == OTHER]
    assert others
    missing(await w.uk.get(f"/system/time/v1/expenses/{others[0]['id']}"))
    mine = next(x for x in expenses if w.project_entity.get(x["project_code"]) == MINE)
    assert (await w.uk.get(f"/system/time/v1/expenses/{mine['id']}")).status_code == 200


@check("time.listProjects")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/time/v1/projects")
    assert items
    only_mine(w, items, lambda p: w.project_entity.get(p["code"]))


@check("time.uninvoicedReport")
async def _(w: World) -> None:
    items = await w.all(w.uk, "/system/time/v1/reports/uninvoiced", **{"from": "2026-10-01", "to": "2026-10-31"})
    assert items
    only_mine(w, items, lambda r: w.project_entity.get(r["project_code"]))


# --- process: time to bill ---------------------------------------------------------------------------------------

TTB = "/process/time-to-bill/v1"


async def runs_snapshot(w: World) -> list[dict[str, Any]]:
    return await w.all(w.admin, f"{TTB}/billing-runs", limit=200)


@check("timeToBill.listBillingRuns")
async def _(w: World) -> None:
    items = await w.all(w.uk, f"{TTB}/billing-runs")
    assert items
    only_mine(w, items, lambda r: r["subject"].partition(":")[0])


@check("timeToBill.getBillingRun")
async def _(w: World) -> None:
    missing(await w.uk.get(f"{TTB}/billing-runs/ttb_{OTHER}_{PERIOD}"))
    assert (await w.uk.get(f"{TTB}/billing-runs/ttb_{MINE}_{PERIOD}")).status_code == 200


@check("timeToBill.startBillingRun")
async def _(w: World) -> None:
    before = await runs_snapshot(w)
    for entity in (OTHER, "*"):
        await forbidden(await w.uk.post(f"{TTB}/billing-runs", json={"legal_entity_code": entity, "period": "2026-09"},
                                        headers={"Idempotency-Key": str(uuid.uuid4())}))
    assert await runs_snapshot(w) == before


@check("timeToBill.receiveEvent")
async def _(w: World) -> None:
    entries = (await w.admin.get("/system/time/v1/time-entries", params={
        "from": "2026-10-01", "to": "2026-10-31", "status": "approved",
        "project_code": project_of_other(w)["external_id"]})).json()["items"]
    assert entries
    event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "grant-matrix",
             "type": "psconnect.time.timesheet.approved", "data": {"entry_ids": [entries[0]["id"]]}}
    await forbidden(await w.uk.post(f"{TTB}/events", json=event))


def ttb_exception_entity(w: World, record: dict[str, Any]) -> str | None:
    head = record["subject"].partition(":")[0]
    if head in w.project_entity:
        return w.project_entity[head]
    return record["run_id"].split("_")[1] if record["run_id"].startswith("ttb_") else None


@check("timeToBill.listExceptions")
async def _(w: World) -> None:
    items = await w.all(w.uk, f"{TTB}/exceptions", limit=200)
    assert items
    only_mine(w, items, lambda r: ttb_exception_entity(w, r))


@check("timeToBill.replayException")
async def _(w: World) -> None:
    theirs = next(r for r in await w.all(w.admin, f"{TTB}/exceptions", limit=200, status="open")
                  if ttb_exception_entity(w, r) == OTHER)
    missing(await w.uk.post(f"{TTB}/exceptions/{theirs['id']}/replay"))
    after = next(r for r in await w.all(w.admin, f"{TTB}/exceptions", limit=200) if r["id"] == theirs["id"])
    assert after == theirs


@check("timeToBill.listReconciliation")
async def _(w: World) -> None:
    rows = await w.all(w.uk, f"{TTB}/reconciliation", period=PERIOD, legal_entity_code=MINE, limit=200)
    assert rows
    only_mine(w, rows, lambda r: w.project_entity.get(r["project"]))
    for entity in (OTHER, "*"):
        await forbidden(await w.uk.get(f"{TTB}/reconciliation", params={"period": PERIOD,
                                                                        "legal_entity_code": entity}))
    missing(await w.uk.get(f"{TTB}/reconciliation", params={"period": PERIOD,
                                                             "project": project_of_other(w)["external_id"]}))


# --- process: provisioning ---------------------------------------------------------------------------------------

PROV = "/process/provisioning/v1"


@check("provisioning.listRuns")
async def _(w: World) -> None:
    items = await w.all(w.uk, f"{PROV}/runs")
    assert items
    only_mine(w, items, lambda r: w.opportunity_entity.get(r["subject"]))


@check("provisioning.getRun")
async def _(w: World) -> None:
    missing(await w.uk.get(f"{PROV}/runs/{w.ids['prov_run:' + OTHER]}"))
    assert (await w.uk.get(f"{PROV}/runs/{w.ids['prov_run:' + MINE]}")).status_code == 200


async def start_other(w: World, path: str, body: dict[str, Any]) -> None:
    before = await w.all(w.admin, f"{PROV}/runs")
    await forbidden(await w.uk.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())}))
    assert await w.all(w.admin, f"{PROV}/runs") == before


def unprovisioned(w: World, code: str) -> str:
    return next(o for o, c in w.opportunity_entity.items() if c == code and o != w.ids["opp:" + code])


@check("provisioning.startRun")
async def _(w: World) -> None:
    await start_other(w, f"{PROV}/runs", {"opportunity_id": unprovisioned(w, OTHER)})


@check("provisioning.receiveCrmEvent")
async def _(w: World) -> None:
    await start_other(w, f"{PROV}/crm-events", {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": "grant-matrix",
        "type": "psconnect.crm.opportunity.closed_won", "data": {"opportunity_id": unprovisioned(w, OTHER)}})


@check("provisioning.listExceptions")
async def _(w: World) -> None:
    only_mine(w, await w.all(w.uk, f"{PROV}/exceptions"), lambda r: w.opportunity_entity.get(r["subject"]))


@check("provisioning.getException")
async def _(w: World) -> None:
    missing(await w.uk.get(f"{PROV}/exceptions/{w.ids['prov_exception:US01']}"))


@check("provisioning.replayException")
async def _(w: World) -> None:
    exception_id = w.ids["prov_exception:US01"]
    before = (await w.admin.get(f"{PROV}/exceptions/{exception_id}")).json()
    missing(await w.uk.post(f"{PROV}/exceptions/{exception_id}/replay"))
    assert (await w.admin.get(f"{PROV}/exceptions/{exception_id}")).json() == before


@check("provisioning.listEvents")
async def _(w: World) -> None:
    items = await w.all(w.uk, f"{PROV}/events")
    assert items
    only_mine(w, items, lambda e: w.opportunity_entity.get(e["subject"]))


# --- process: worker sync (every entity's workers at once: nothing of it is a restricted caller's) ---------------

SYNC = "/process/worker-sync/v1"


@check("worker_sync.listRuns")
async def _(w: World) -> None:
    assert await w.all(w.uk, f"{SYNC}/runs") == []


@check("worker_sync.getRun")
async def _(w: World) -> None:
    missing(await w.uk.get(f"{SYNC}/runs/{w.ids['sync_run']}"))


@check("worker_sync.startRun")
async def _(w: World) -> None:
    before = await w.all(w.admin, f"{SYNC}/runs")
    await forbidden(await w.uk.post(f"{SYNC}/runs", json={"full": True},
                                    headers={"Idempotency-Key": str(uuid.uuid4())}))
    assert len(await w.all(w.admin, f"{SYNC}/runs")) == len(before)


@check("worker_sync.listExceptions")
async def _(w: World) -> None:
    assert await w.all(w.uk, f"{SYNC}/exceptions") == []


@check("worker_sync.getException")
async def _(w: World) -> None:
    missing(await w.uk.get(f"{SYNC}/exceptions/{uuid.uuid4().hex}"))
    for record in await w.all(w.admin, f"{SYNC}/exceptions"):
        missing(await w.uk.get(f"{SYNC}/exceptions/{record['id']}"))


@check("worker_sync.replayException")
async def _(w: World) -> None:
    for record in await w.all(w.admin, f"{SYNC}/exceptions", status="open"):
        missing(await w.uk.post(f"{SYNC}/exceptions/{record['id']}/replay"))
    missing(await w.uk.post(f"{SYNC}/exceptions/{uuid.uuid4().hex}/replay"))


@check("timeToBill.listRevenue")
async def _(w: World) -> None:
    items = await w.all(w.uk, f"{TTB}/revenue", limit=200)
    assert items
    only_mine(w, items, lambda i: i["legal_entity_code"])
    await forbidden(await w.uk.get(f"{TTB}/revenue", params={"legal_entity_code": OTHER}))


# --- process: receivables (a poll reads every entity's ERP: its runs are nobody's; the invoices are each one's) ---

RCV = "/process/receivables/v1"


@check("receivables.listInvoices")
async def _(w: World) -> None:
    items = await w.all(w.uk, f"{RCV}/invoices", limit=200)
    assert items
    only_mine(w, items, lambda i: i["legal_entity_code"])
    await forbidden(await w.uk.get(f"{RCV}/invoices", params={"legal_entity": OTHER}))


@check("receivables.getInvoice")
async def _(w: World) -> None:
    other = next(i for i in await w.all(w.admin, f"{RCV}/invoices", limit=200) if i["legal_entity_code"] == OTHER)
    missing(await w.uk.get(f"{RCV}/invoices/{other['external_id']}"))


@check("receivables.startRun")
async def _(w: World) -> None:
    before = await w.all(w.admin, f"{RCV}/runs")
    await forbidden(await w.uk.post(f"{RCV}/runs", json={"full": True},
                                    headers={"Idempotency-Key": str(uuid.uuid4())}))
    assert len(await w.all(w.admin, f"{RCV}/runs")) == len(before)


@check("receivables.listRuns")
async def _(w: World) -> None:
    assert await w.all(w.uk, f"{RCV}/runs") == []


@check("receivables.getRun")
async def _(w: World) -> None:
    missing(await w.uk.get(f"{RCV}/runs/{w.ids['rcv_run']}"))


@check("receivables.listExceptions")
async def _(w: World) -> None:
    assert await w.all(w.uk, f"{RCV}/exceptions") == []


@check("receivables.getException")
async def _(w: World) -> None:
    missing(await w.uk.get(f"{RCV}/exceptions/{uuid.uuid4().hex}"))


@check("receivables.replayException")
async def _(w: World) -> None:
    missing(await w.uk.post(f"{RCV}/exceptions/{uuid.uuid4().hex}/replay"))


# --- experience (already enforced; in the matrix so it stays so) -------------------------------------------------

DASH = "/experience/dashboards/v1"
WB = "/experience/workbench/v1"


def dashboard(operation_id: str, path: str, *, listed: bool) -> None:
    @check(operation_id)
    async def _(w: World) -> None:
        await forbidden(await w.uk.get(DASH + path, params={"legal_entity": OTHER}))
        response = await w.uk.get(DASH + path, params={"period": PERIOD})
        assert response.status_code == 200, response.text
        if listed:
            only_mine(w, response.json()["items"], lambda i: i["legal_entity_code"])


for _op, _path, _listed in (("dashboards.listBacklog", "/backlog", True),
                            ("dashboards.listInvoiceReadiness", "/invoice-readiness", True),
                            ("dashboards.listMargin", "/margin", True),
                            ("dashboards.getSyncHealth", "/sync-health", False),
                            ("dashboards.getUnbilledAging", "/unbilled-aging", False),
                            ("dashboards.getUtilization", "/utilization", False),
                            ("dashboards.listWorkerUtilization", "/utilization/workers", True),
                            ("dashboards.listWorkInProgress", "/work-in-progress", True)):
    dashboard(_op, _path, listed=_listed)


@check("dashboards.getReceivables")
async def _(w: World) -> None:
    await forbidden(await w.uk.get(f"{DASH}/receivables", params={"legal_entity": OTHER}))
    report = (await w.uk.get(f"{DASH}/receivables", params={"as_of": "2026-12-31"})).json()
    assert report["entities"] and report["items"]
    only_mine(w, report["entities"] + report["items"], lambda i: i["legal_entity_code"])


async def other_workbench_exception(w: World) -> dict[str, Any]:
    record: dict[str, Any] = next(r for r in await w.all(w.admin, f"{TTB}/exceptions", limit=200, status="open")
                                  if ttb_exception_entity(w, r) == OTHER)
    return record


@check("workbench.listExceptions")
async def _(w: World) -> None:
    items = await w.all(w.uk, f"{WB}/exceptions", limit=200)
    assert items
    only_mine(w, [i["exception"] for i in items], lambda r: ttb_exception_entity(w, r))


@check("workbench.getException")
async def _(w: World) -> None:
    missing(await w.uk.get(f"{WB}/exceptions/{(await other_workbench_exception(w))['id']}"))


def workbench_write(operation_id: str, suffix: str, body: dict[str, Any] | None) -> None:
    @check(operation_id)
    async def _(w: World) -> None:
        record = await other_workbench_exception(w)
        before = (await w.admin.get(f"{WB}/exceptions/{record['id']}")).json()
        missing(await w.uk.post(f"{WB}/exceptions/{record['id']}/{suffix}", json=body))
        assert (await w.admin.get(f"{WB}/exceptions/{record['id']}")).json() == before


workbench_write("workbench.assignException", "assignment", {"assignee": "uk-team"})
workbench_write("workbench.commentException", "comments", {"text": "from UK01"})
workbench_write("workbench.resolveException", "resolution", {"resolution": "not ours"})
workbench_write("workbench.replayException", "replay", None)


@check("audit.listEvents")
async def _(w: World) -> None:
    await forbidden(await w.uk.get("/experience/audit/v1/events", params={"legal_entity": OTHER}))
    mine = await w.uk.get("/experience/audit/v1/events", params={"limit": 500})
    assert mine.status_code == 200, mine.text
    everything = await w.admin.get("/experience/audit/v1/events", params={"limit": 500})
    theirs = {e["id"] for e in everything.json()["items"] if e.get("legal_entity") in (OTHER, f"LE-{OTHER}")}
    assert theirs and theirs.isdisjoint(e["id"] for e in mine.json()["items"])


SUBS = "/experience/subscriptions/v1/subscriptions"


async def admins_subscription(w: World) -> str:
    """A subscription of the unrestricted client, to all entities."""
    if "subscription" not in w.ids:
        created = await w.admin.post(SUBS, json={"url": "https://hooks.invalid/all",
                                                 "event_types": ["psconnect.billing_run.finished"]})
        assert created.status_code == 201, created.text
        w.ids["subscription"] = created.json()["subscription"]["id"]
    return w.ids["subscription"]


@check("subscriptions.createSubscription")
async def _(w: World) -> None:
    before = await w.all(w.uk, SUBS)
    await forbidden(await w.uk.post(SUBS, json={"url": "https://hooks.invalid/uk", "legal_entities": [OTHER],
                                                "event_types": ["psconnect.time.posted"]}))
    assert await w.all(w.uk, SUBS) == before
    mine = await w.uk.post(SUBS, json={"url": "https://hooks.invalid/uk", "event_types": ["psconnect.time.posted"]})
    assert mine.status_code == 201 and mine.json()["subscription"]["legal_entities"] == [MINE]


@check("subscriptions.listSubscriptions")
async def _(w: World) -> None:
    theirs = await admins_subscription(w)
    assert theirs not in {s["id"] for s in await w.all(w.uk, SUBS)}
    assert all(s["legal_entities"] == [MINE] for s in await w.all(w.uk, SUBS))


def subscription_op(operation_id: str, method: str, suffix: str, body: dict[str, Any] | None) -> None:
    @check(operation_id)
    async def _(w: World) -> None:
        sid = await admins_subscription(w)
        before = (await w.admin.get(f"{SUBS}/{sid}")).json()
        missing(await w.uk.request(method, f"{SUBS}/{sid}{suffix}", json=body))
        assert (await w.admin.get(f"{SUBS}/{sid}")).json() == before


subscription_op("subscriptions.getSubscription", "GET", "", None)
subscription_op("subscriptions.listDeliveries", "GET", "/deliveries", None)
subscription_op("subscriptions.rotateSecret", "POST", "/rotate", {"overlap_seconds": 0})
subscription_op("subscriptions.replayEvents", "POST", "/replay", {"since": "2026-01-01T00:00:00Z",
                                                                   "until": "2027-01-01T00:00:00Z"})
subscription_op("subscriptions.deleteSubscription", "DELETE", "", None)


@check("subscriptions.replayEvent")
async def _(w: World) -> None:
    """Another client's subscription does not exist for it; its own never receives another entity's event."""
    other_event = f"ttb_{OTHER}_{PERIOD}:finished"  # the billing run's finished event (contracts/events.py)
    sid = await admins_subscription(w)
    missing(await w.uk.post(f"{SUBS}/{sid}/events/{other_event}/replay"))
    mine = await w.uk.post(SUBS, json={"url": "https://hooks.invalid/uk-runs",
                                       "event_types": ["psconnect.billing_run.finished"]})
    assert mine.status_code == 201, mine.text
    replayed = await w.uk.post(f"{SUBS}/{mine.json()['subscription']['id']}/events/{other_event}/replay")
    assert replayed.status_code == 202 and replayed.json() == {"queued": 0}, replayed.text
    assert (await w.admin.post(f"{SUBS}/{sid}/events/{other_event}/replay")).json() == {"queued": 1}


# --- operations ---------------------------------------------------------------------------------------------------

@check("ops.getMetrics")
async def _(w: World) -> None:
    """The series carry every entity's figures (hours posted per entity): refused whole, not filtered."""
    await forbidden(await w.uk.get("/metrics"))
    admin = await w.admin.get("/metrics")
    assert admin.status_code == 200 and 'legal_entity="' in admin.text, admin.text[:300]


# --- the matrix --------------------------------------------------------------------------------------------------


def test_every_published_operation_is_in_the_matrix() -> None:
    published = set(published_operations())
    assert published - set(CHECKS) - set(NO_ENTITY) == set(), "give the new operation a check or a reason"
    assert set(CHECKS) - published == set() and set(NO_ENTITY) - published == set()
    assert set(CHECKS).isdisjoint(NO_ENTITY) and all(NO_ENTITY.values())


@on_stack
@pytest.mark.parametrize("operation_id", sorted(set(published_operations()) - set(NO_ENTITY)))
async def test_a_uk01_client_never_reaches_us01(w: World, operation_id: str) -> None:
    await CHECKS[operation_id](w)


@pytest.mark.parametrize("operation_id", sorted(set(published_operations()) - set(NO_ENTITY)))
def test_the_published_document_declares_the_403(operation_id: str) -> None:
    method, path = published_operations()[operation_id]
    for doc in DOCS.glob("*.json"):
        paths = json.loads(doc.read_text())["paths"]
        if path in paths and method.lower() in paths[path]:
            responses = paths[path][method.lower()]["responses"]
            assert "403" in responses, f"{operation_id} can answer 403 (legal_entity_forbidden) but does not say so"
            return
    raise AssertionError(operation_id)

