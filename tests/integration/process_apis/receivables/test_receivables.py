"""Invoice status and payments read back from every ERP, end to end on the embedded stack.

The demo firm's five legal entities sit on three ERPs (US01 on NetSuite, CA01 on Business Central, AU01 on
Xero, by the shipped connections file). A draft is put in each through the ERP system API, then posted and
paid the way finance would in the ERP; the receivables poll (`/process/receivables/v1`) reads every change
back, records it per invoice and publishes `invoice.posted` and `payment.received` once each. The AR aging
widget reports per entity and customer, and in a group currency at each entity's own rate.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from dbos import DBOS

from contracts.events import INVOICE_POSTED, PAYMENT_RECEIVED
from process_apis._internal.tables import runs
from process_apis.event_feed import EventFeed
from process_apis.receivables.runtime import runtime
from process_apis.receivables.workflow import STEPS, workflow_id
from process_apis.time_to_bill.facts import fact_projects
from system_apis._internal.faults import Fault
from system_apis.xero.webhooks import XeroEvent, event_key, sign
from tests.integration.process_apis.time_to_bill.ttb_stack import PERIOD, ttb_stack
from tests.stack import Stack, running_stack

BASE = "/process/receivables/v1"
ERP = "/system/erp/v1"
ENTITIES = ("US01", "CA01", "AU01")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as s:
        yield s


async def _all(s: Stack, path: str, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        response = await s.http.get(path, params={**params, "limit": "200", **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json().get("next_cursor")
        if not cursor:
            return items


async def _draft(s: Stack, entity: str, key: str, amount: str) -> dict[str, Any]:
    entity_id = next(le["id"] for le in await _all(s, f"{ERP}/legal-entities", legal_entity=entity)
                     if le["code"] == entity)
    project = next(p for p in await _all(s, f"{ERP}/projects", legal_entity=entity)
                   if p["status"] == "active" and p["legal_entity_id"] == entity_id)
    periods = [p for p in await _all(s, f"{ERP}/accounting-periods", legal_entity=entity,
                                     legal_entity_id=project["legal_entity_id"])
               if not p["is_closed"] and not p["ar_locked"]]
    period = min(periods, key=lambda p: p["start_date"])["start_date"][:7]
    cur = project["currency"]
    body = {"customer_id": project["customer_id"], "project_external_id": project["external_id"],
            "legal_entity_id": project["legal_entity_id"], "period": period, "currency": cur,
            "lines": [{"kind": "time", "description": "Consulting", "quantity": "1",
                       "unit_price": {"amount": amount, "currency": cur}, "amount": {"amount": amount, "currency": cur},
                       "source_keys": [f"{key}-1"]}]}
    response = await s.http.put(f"{ERP}/invoices/by-external-id/{key}", json=body, params={"legal_entity": entity},
                                headers={"Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code == 201, response.text
    invoice: dict[str, Any] = response.json()
    return invoice


async def _poll(s: Stack, *, full: bool = False) -> dict[str, Any]:
    response = await s.http.post(f"{BASE}/runs", json={"full": full}, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code == 202, response.text
    return await s.wait_for(f"{BASE}/runs/{response.json()['id']}")


async def _pay(s: Stack, entity: str, invoice: dict[str, Any], key: str, amount: str) -> None:
    body = {"invoice_external_id": invoice["external_id"], "legal_entity_id": invoice["legal_entity_id"],
            "date": "2026-11-20", "amount": {"amount": amount, "currency": invoice["currency"]}}
    response = await s.http.put(f"{ERP}/payments/by-external-id/{key}", json=body, params={"legal_entity": entity},
                                headers={"Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code in (200, 201), response.text


async def _until_back(s: Stack, entity: str) -> None:
    for _ in range(60):
        response = await s.http.get(f"{ERP}/legal-entities", params={"legal_entity": entity})
        if response.status_code == 200:
            return
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
    raise AssertionError(f"{entity}'s ERP never came back")


def _events(s: Stack, type_: str) -> list[dict[str, Any]]:
    return [f.event.data for f in EventFeed(s.gateway.engine).after(0, 10_000) if f.event.type == type_]


async def test_status_and_payments_come_back_from_every_erp_once(stack: Stack) -> None:
    s = stack
    drafts = {e: await _draft(s, e, f"INV-RCV-{e}", "1000.00") for e in ENTITIES}

    first = await _poll(s)
    assert first["status"] == "succeeded", first
    recorded = {i["external_id"]: i for i in await _all(s, f"{BASE}/invoices")}
    assert {recorded[f"INV-RCV-{e}"]["status"] for e in ENTITIES} == {"draft"}
    assert not _events(s, INVOICE_POSTED)

    for e in ENTITIES:
        posted = await s.http.post(f"{ERP}/invoices/by-external-id/INV-RCV-{e}/post", params={"legal_entity": e},
                                   headers={"Idempotency-Key": str(uuid.uuid4())})
        assert posted.status_code == 200, posted.text
        await _pay(s, e, drafts[e], f"PAY-RCV-{e}", "400.00")

    second = await _poll(s)
    assert second["status"] == "succeeded", second
    assert second["result"]["posted"] == "3" and second["result"]["payments"] == "3", second["result"]
    recorded = {i["external_id"]: i for i in await _all(s, f"{BASE}/invoices")}
    for e in ENTITIES:
        row = recorded[f"INV-RCV-{e}"]
        assert row["legal_entity_code"] == e
        assert row["status"] == "partially_paid", row
        assert Decimal(row["amount_paid"]["amount"]) == Decimal("400.00")
        assert Decimal(row["amount_due"]["amount"]) == Decimal("600.00")

    # Nothing changed: a third poll (and a full re-read of every invoice) publishes nothing more.
    assert (await _poll(s))["result"]["changed"] == "0"
    assert (await _poll(s, full=True))["result"]["changed"] == "0"
    posted_events = _events(s, INVOICE_POSTED)
    payments = _events(s, PAYMENT_RECEIVED)
    assert sorted(ev["invoice_external_id"] for ev in posted_events) == sorted(f"INV-RCV-{e}" for e in ENTITIES)
    assert sorted((ev["legal_entity"], ev["amount_received"]["amount"]) for ev in payments) == \
        sorted((e, "400.00") for e in ENTITIES)

    # The rest is paid in one ERP: only that payment is read and published.
    await _pay(s, "CA01", drafts["CA01"], "PAY-RCV-CA01-2", "600.00")
    fourth = await _poll(s)
    assert (fourth["result"]["changed"], fourth["result"]["payments"]) == ("1", "1")
    paid = (await s.http.get(f"{BASE}/invoices/INV-RCV-CA01")).json()
    assert paid["status"] == "paid" and Decimal(paid["amount_due"]["amount"]) == 0
    assert len(_events(s, PAYMENT_RECEIVED)) == 4


async def test_an_erp_down_fails_its_entity_only_and_the_replay_reads_what_was_missed(stack: Stack) -> None:
    s = stack
    draft = await _draft(s, "AU01", "INV-RCV-DOWN", "250.00")
    await _draft(s, "US01", "INV-RCV-UP", "250.00")
    xero = s.sim("erp", "AU01")
    xero.faults.add(Fault(kind="server_error", status=503, path="Invoices"))
    run = await _poll(s)
    assert run["status"] == "needs_attention", run
    recorded = {i["external_id"] for i in await _all(s, f"{BASE}/invoices")}
    assert "INV-RCV-UP" in recorded and "INV-RCV-DOWN" not in recorded
    exceptions = (await s.http.get(f"{BASE}/exceptions")).json()["items"]
    assert [(x["subject"], x["owner"]) for x in exceptions] == [("AU01", "integration-operations")]

    xero.faults.clear()
    await _until_back(s, "AU01")  # the gateway's breaker on the Xero account cools down first, as for any client
    await s.http.post(f"{ERP}/invoices/by-external-id/{draft['external_id']}/post", params={"legal_entity": "AU01"},
                      headers={"Idempotency-Key": str(uuid.uuid4())})
    replay = await s.http.post(f"{BASE}/exceptions/{exceptions[0]['id']}/replay",
                               headers={"Idempotency-Key": str(uuid.uuid4())})
    assert replay.status_code == 202, replay.text
    again = await s.wait_for(f"{BASE}/runs/{replay.json()['id']}")
    assert again["status"] == "succeeded", again
    assert (await s.http.get(f"{BASE}/invoices/INV-RCV-DOWN")).json()["status"] in ("posted", "sent", "approved")


async def test_an_erp_wholly_down_still_fails_only_its_entity_once_the_entities_are_known(stack: Stack) -> None:
    """The entity list merges every ERP account, so it fails with one down: a poll then reads the entities it
    polled before, each at its own ERP."""
    s = stack
    assert (await _poll(s))["status"] == "succeeded"  # every entity known
    xero = s.sim("erp", "AU01")
    xero.faults.add(Fault(kind="server_error", status=503))  # every call: the entity list fails too
    await _draft(s, "US01", "INV-RCV-WHILE", "125.00")
    run = await _poll(s)
    assert run["status"] == "needs_attention", run
    assert "entities known" in run["steps"][0]["detail"], run["steps"][0]
    assert (await s.http.get(f"{BASE}/invoices/INV-RCV-WHILE")).json()["status"] == "draft"
    exceptions = (await s.http.get(f"{BASE}/exceptions", params={"status": "open"})).json()["items"]
    assert [x["subject"] for x in exceptions] == ["AU01"]


async def test_receivables_aging_in_a_group_currency_adds_up_to_the_cent(stack: Stack) -> None:
    s = stack
    for e, amount in (("US01", "1000.00"), ("CA01", "333.33"), ("AU01", "777.77")):
        draft = await _draft(s, e, f"INV-AR-{e}", amount)
        await s.http.post(f"{ERP}/invoices/by-external-id/INV-AR-{e}/post", params={"legal_entity": e},
                          headers={"Idempotency-Key": str(uuid.uuid4())})
        await _pay(s, e, draft, f"PAY-AR-{e}", "100.00")
    await _poll(s)
    recorded = {i["external_id"]: i for i in await _all(s, f"{BASE}/invoices")}
    due_date = max(recorded[f"INV-AR-{e}"]["due_date"] for e in ENTITIES)
    report = (await s.http.get("/experience/dashboards/v1/receivables",
                               params={"as_of": due_date, "currency": "USD"})).json()
    by_entity = {(t["legal_entity_code"], t["currency"]): t for t in report["entities"]}
    assert Decimal(by_entity[("US01", "USD")]["open"]["amount"]) == Decimal("900.00")
    rates = {(r["base"], r["source"]) for r in report["rates"]}
    assert ("USD", "identity") in rates
    assert ("CAD", "erp") in rates  # Business Central keeps dated rates
    assert ("AUD", "rate_table") in rates  # Xero keeps none: the configured table
    converted = sum((Decimal(t["converted_open"]["amount"]["amount"]) for t in report["entities"]), Decimal(0))
    assert Decimal(report["group_open"]["amount"]) == converted
    for total in report["entities"]:
        assert Decimal(total["converted_open"]["amount"]["amount"]) == sum(
            (Decimal(b["converted"]["amount"]["amount"]) for b in total["buckets"]), Decimal(0))
        original = Decimal(total["open"]["amount"])
        rate = Decimal(total["converted_open"]["rate"])
        assert Decimal(total["converted_open"]["amount"]["amount"]) == (original * rate).quantize(Decimal("0.01"))
    assert report["group_overdue"]["amount"] == "0.00"  # as of the due date nothing is overdue

    def rate_reads() -> int:
        return sum(n for (_, path), n in s.sim("erp", "CA01").faults.seen.items() if "currencyExchangeRates" in path)
    reads = rate_reads()
    assert reads > 0
    again = (await s.http.get("/experience/dashboards/v1/receivables",
                              params={"as_of": due_date, "currency": "USD"})).json()
    assert again["group_open"] == report["group_open"] and rate_reads() == reads  # kept for the day

    later = (await s.http.get("/experience/dashboards/v1/receivables",
                              params={"as_of": "2027-06-30", "days": "365"})).json()
    assert all(b["amount"]["amount"] == "0.00" for t in later["entities"] for b in t["buckets"]
               if b["bucket"] != "90+")
    assert later["group_open"] is None and later["rates"] == []


async def test_a_missing_rate_is_a_clear_422_not_an_unconverted_sum(stack: Stack) -> None:
    s = stack
    draft = await _draft(s, "AU01", "INV-AR-NORATE", "10.00")
    await s.http.post(f"{ERP}/invoices/by-external-id/{draft['external_id']}/post", params={"legal_entity": "AU01"},
                      headers={"Idempotency-Key": str(uuid.uuid4())})
    await _poll(s)
    response = await s.http.get("/experience/dashboards/v1/receivables", params={"currency": "JPY"})
    assert response.status_code == 422 and response.json()["code"] == "rate_unavailable", response.text
    assert "AUD" in response.json()["detail"] and "JPY" in response.json()["detail"]


async def test_readiness_shows_unposted_drafts_and_margin_adds_up_in_a_group_currency(tmp_path: Path) -> None:
    async with ttb_stack(tmp_path) as t:
        assert (await t.bill("UK01"))["status"] in ("succeeded", "needs_attention")
        await _poll(t.stack)
        drafts = [i for i in await _all(t.stack, f"{BASE}/invoices", legal_entity="UK01") if i["period"] == PERIOD]
        assert drafts and {i["status"] for i in drafts} == {"draft"}

        async def readiness() -> dict[str, Any]:
            response = await t.http.get("/experience/dashboards/v1/invoice-readiness",
                                        params={"legal_entity": "UK01", "period": PERIOD, "limit": 200})
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        before = await readiness()
        drafted: dict[str, Decimal] = {}
        for i in drafts:
            drafted[i["project_external_id"]] = drafted.get(i["project_external_id"], Decimal(0)) + \
                Decimal(i["total"]["amount"])
        shown = {p["project"]: Decimal(p["drafted_unposted"]["amount"]) for p in before["items"]}
        assert {p: a for p, a in shown.items() if a} == {p: a for p, a in drafted.items() if p in shown}
        assert Decimal(before["totals"][0]["drafted_unposted"]["amount"]) == sum(drafted.values(), Decimal(0))

        # With a practice, the drafted totals are those of the practice's projects only, like every other figure.
        practice = before["items"][0]["practice"]
        with t.engine.connect() as conn:
            members = set(conn.scalars(sa.select(fact_projects.c.project).where(
                fact_projects.c.period == PERIOD, fact_projects.c.practice == practice)))
        narrowed = (await t.http.get("/experience/dashboards/v1/invoice-readiness", params={
            "legal_entity": "UK01", "period": PERIOD, "practice": practice, "limit": 200})).json()
        assert {p["practice"] for p in narrowed["items"]} == {practice}
        assert members & set(drafted) and set(drafted) - members  # drafts on both sides of the filter
        assert Decimal(narrowed["totals"][0]["drafted_unposted"]["amount"]) == \
            sum((a for p, a in drafted.items() if p in members), Decimal(0))

        first = drafts[0]
        await t.http.post(f"{ERP}/invoices/by-external-id/{first['external_id']}/post",
                          headers={"Idempotency-Key": str(uuid.uuid4())})
        await _poll(t.stack)
        after = await readiness()
        assert Decimal(after["totals"][0]["drafted_unposted"]["amount"]) == \
            sum(drafted.values(), Decimal(0)) - Decimal(first["total"]["amount"])

        # Margin in a group currency: every project converted on its own at UK01's ERP rate, then added.
        margin = (await t.http.get("/experience/dashboards/v1/margin", params={
            "legal_entity": "UK01", "period": PERIOD, "currency": "USD", "limit": 200})).json()
        [rate] = margin["rates"]
        assert (rate["base"], rate["quote"], rate["source"]) == ("GBP", "USD", "erp") and rate["date"] <= "2026-10-31"
        total = margin["group_total"]
        assert total["currency"] == "USD"
        for field in ("revenue", "cost"):
            assert Decimal(total[field]["amount"]) == sum(
                (Decimal(i[f"converted_{field}"]["amount"]["amount"]) for i in margin["items"]), Decimal(0))
            for item in margin["items"]:
                assert Decimal(item[f"converted_{field}"]["amount"]["amount"]) == (
                    Decimal(item[field]["amount"]) * Decimal(rate["rate"])).quantize(Decimal("0.01"))
        assert Decimal(total["margin"]["amount"]) == Decimal(total["revenue"]["amount"]) - \
            Decimal(total["cost"]["amount"])
        plain = (await t.http.get("/experience/dashboards/v1/margin",
                                  params={"legal_entity": "UK01", "period": PERIOD})).json()
        assert plain["group_total"] is None and plain["rates"] == []


def _read_backs(s: Stack) -> int:
    with s.gateway.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(runs).where(runs.c.process == "receivables"))
                   or 0)


def _invoice_event(invoice_id: str) -> dict[str, str]:
    """One INVOICE event of a Xero delivery, as Xero's webhook documentation shows it."""
    return {"resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{invoice_id}", "resourceId": invoice_id,
            "eventDateUtc": "2026-11-20T10:15:00.000", "eventType": "UPDATE", "eventCategory": "INVOICE",
            "tenantId": "00000000-0000-0000-0000-000000000000", "tenantType": "ORGANISATION"}


async def _deliver(s: Stack, body: bytes, key: str = "sim-webhook-key") -> tuple[int, bytes]:
    response = await s.http.post("/webhooks/au01-erp", content=body,
                                 headers={"x-xero-signature": sign(key, body), "Content-Type": "application/json",
                                          "Authorization": ""})
    return response.status_code, response.content


async def test_a_signed_xero_webhook_reads_a_payment_back_without_waiting_for_the_poll(stack: Stack) -> None:
    s = stack
    draft = await _draft(s, "AU01", "INV-HOOK-AU01", "500.00")
    assert (await _poll(s))["status"] == "succeeded"
    posted = await s.http.post(f"{ERP}/invoices/by-external-id/INV-HOOK-AU01/post", params={"legal_entity": "AU01"},
                               headers={"Idempotency-Key": str(uuid.uuid4())})
    assert posted.status_code == 200, posted.text
    await _pay(s, "AU01", draft, "PAY-HOOK-AU01", "200.00")
    before = _read_backs(s)

    # Xero's intent-to-receive check: empty deliveries, one signed with the key (200, no body), one not (401).
    empty = json.dumps({"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": "QWERTY"}).encode()
    assert await _deliver(s, empty) == (200, b"")
    status, refused = await _deliver(s, empty, key="not-the-webhook-key")
    assert status == 401 and json.loads(refused)["code"] == "signature_mismatch"

    event = _invoice_event(draft["id"])
    body = json.dumps({"events": [event], "firstEventSequence": 7, "lastEventSequence": 7, "entropy": "A1"}).encode()
    assert (await _deliver(s, body, key="not-the-webhook-key"))[0] == 401 and _read_backs(s) == before
    assert await _deliver(s, body) == (200, b"")
    assert _read_backs(s) == before + 1
    # The read-back it started, found by the key it was started with: the payment is there, no poll asked for.
    key = event_key([msgspec.convert(event, XeroEvent)])
    found = await s.http.post(f"{BASE}/runs", json={"full": False}, headers={"Idempotency-Key": key})
    assert found.status_code == 200, found.text
    run = await s.wait_for(f"{BASE}/runs/{found.json()['id']}")
    assert run["status"] == "succeeded" and run["result"]["payments"] == "1", run
    row = next(i for i in await _all(s, f"{BASE}/invoices") if i["external_id"] == "INV-HOOK-AU01")
    assert row["status"] == "partially_paid" and Decimal(row["amount_paid"]["amount"]) == Decimal("200.00")

    # Xero's redelivery of the same events, and a contact change: acknowledged, no second read-back.
    assert await _deliver(s, body) == (200, b"")
    contact = {**event, "eventCategory": "CONTACT", "resourceId": "c-1"}
    assert await _deliver(s, json.dumps({"events": [contact], "entropy": "B2"}).encode()) == (200, b"")
    assert _read_backs(s) == before + 1
    status, malformed = await _deliver(s, b'{"events": "not a list"}')
    assert status == 400 and json.loads(malformed)["code"] == "invalid_webhook_body"


async def test_an_invoice_event_during_a_read_back_gets_one_more_read_back_after_it(stack: Stack) -> None:
    """The read-back in flight may have read AU01 before the change Xero reports: joining it is not enough."""
    s = stack
    first = await _poll(s)
    assert first["status"] == "succeeded"
    await _workflow_ended(first["id"])  # its end looks for a wanted follow-up: it must not see the events below
    # A read-back recorded but not yet running: certainly in flight when the events arrive.
    in_flight, _ = runtime().runs.create("receivables", "changes:in-flight", "rcv_inflight", STEPS)
    event = _invoice_event("i-1")
    before = _read_backs(s)
    for n in range(3):  # three deliveries while it is in flight: one follow-up serves them all
        body = json.dumps({"events": [{**event, "eventDateUtc": f"2026-11-20T10:1{n}:00.000"}],
                           "entropy": f"F{n}"}).encode()
        assert await _deliver(s, body) == (200, b"")
    assert _read_backs(s) == before  # joined, nothing started beside it
    assert await s.gateway.processes.service("receivables").resume_unstarted() == 1
    assert await _workflow_ended(in_flight.id) == "succeeded"
    assert _read_backs(s) == before + 1
    follow_up = _newest_read_back(s)
    # Taken once: the follow-up's own end starts nothing more, and a start with nothing in flight wants none.
    assert await _workflow_ended(follow_up) == "succeeded"
    assert _read_backs(s) == before + 1
    assert (await _deliver(s, json.dumps({"events": [event], "entropy": "G"}).encode())) == (200, b"")
    assert _read_backs(s) == before + 2
    assert await _workflow_ended(_newest_read_back(s)) == "succeeded"
    assert _read_backs(s) == before + 2


async def _workflow_ended(run_id: str) -> str:
    """The run's status once its whole workflow has returned, the follow-up it may start included."""
    handle = await DBOS.retrieve_workflow_async(workflow_id(run_id, 1))
    status: str = await asyncio.wait_for(handle.get_result(), timeout=60)
    return status


def _newest_read_back(s: Stack) -> str:
    with s.gateway.engine.connect() as conn:
        return str(conn.execute(sa.select(runs.c.id).where(runs.c.process == "receivables")
                                .order_by(runs.c.created_at.desc(), runs.c.id)).scalars().first())
