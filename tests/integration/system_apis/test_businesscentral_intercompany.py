"""Business Central intercompany charges against the simulator: the documents sent, posted, and once.

The shared journey (`test_erp_intercompany.py`) proves the canonical behaviour; these pin Business Central's side:
a receivable is a posted salesInvoice to the customer ``IC-<code>``, a payable a posted purchaseInvoice from the
vendor ``IC-<code>`` in the charge's currency (``currencyCode``), G/L account lines on the intercompany accounts;
the counterparty record is created once; a lost answer (of the header's POST or of ``Microsoft.NAV.post``) and
5xx faults never record a side twice. Every exchange is checked against the vendored API document, as in
`test_businesscentral.py`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest

from contracts.billing import IntercompanyChargeUpsert, IntercompanyLine
from contracts.common import Money
from system_apis._internal.faults import Fault
from system_apis._internal.http import VendorError
from system_apis.businesscentral import BASE_URL, BusinessCentralClient, BusinessCentralErp
from system_apis.businesscentral.simulator import BusinessCentralSimulator
from tests.integration.system_apis.test_businesscentral import Recording, check_exchange
from tests.integration.system_apis.vendor_kit import PACE, Sleeps, asgi, vendor_http

ENTITY = "DE01"


@pytest.fixture
def sim() -> BusinessCentralSimulator:
    return BusinessCentralSimulator(legal_entities=(ENTITY,), page_size=40)


@pytest.fixture
def recording(sim: BusinessCentralSimulator) -> Iterator[Recording]:
    recorded = Recording(asgi(sim.app))
    yield recorded
    for request, status, body in recorded.exchanges:
        check_exchange(request, status, body)


@pytest.fixture
async def http(sim: BusinessCentralSimulator, recording: Recording) -> AsyncIterator[httpx.AsyncClient]:
    async with vendor_http(sim.app, BASE_URL, transport=recording) as client:
        yield client


@pytest.fixture
def erp(http: httpx.AsyncClient, sleeps: Sleeps) -> BusinessCentralErp:
    return BusinessCentralErp(BusinessCentralClient(http, retry=PACE, sleep=sleeps, budget=None))


def _project(sim: BusinessCentralSimulator) -> str:
    return next(str(r["recordKey"]) for r in sim.records(ENTITY, "psconnectRecords") if r["recordType"] == "project")


def _charge(side: str, currency: str, project: str,
            hours: tuple[str, ...] = ("6.5", "-2")) -> IntercompanyChargeUpsert:
    rate = Money(amount=Decimal("96.25"), currency=currency)
    lines = [IntercompanyLine(line_key=f"TE-{i}:x", project_external_id=project, employee_external_id="W-UK-7",
                              date=dt.date(2026, 10, 7 + i), hours=h, transfer_rate=rate,
                              amount=Money(amount=(Decimal(h) * rate.amount).quantize(Decimal("0.01"), ROUND_HALF_UP),
                                           currency=currency))
             for i, h in enumerate(hours)]
    return IntercompanyChargeUpsert(legal_entity_id=ENTITY, counterparty="UK01", side=side,  # type: ignore[arg-type]
                                    period="2026-10", currency=currency, lines=lines, memo="Seconded")


def _documents(sim: BusinessCentralSimulator, entity_set: str) -> list[dict[str, Any]]:
    return sim.records(ENTITY, entity_set)


class TestWire:
    async def test_a_payable_is_a_posted_foreign_currency_purchase_invoice_from_the_intercompany_vendor(
            self, erp: BusinessCentralErp, sim: BusinessCentralSimulator) -> None:
        charge, created = await erp.upsert_intercompany_charge("IC-W-P", _charge("payable", "GBP", _project(sim)))
        assert created and charge.total == Money(amount=Decimal("433.13"), currency="GBP")
        [vendor] = [v for v in sim.records(ENTITY, "vendors") if v["number"] == "IC-UK01"]
        [invoice] = _documents(sim, "purchaseInvoices")
        assert invoice["status"] == "Open" and invoice["vendorId"] == vendor["id"]
        assert invoice["currencyCode"] == "GBP" and invoice["vendorInvoiceNumber"] == "IC-W-P"
        assert invoice["postingDate"] == "2026-10-31"
        lines = sorted(sim.store.lines[next(iter(sim.store.lines))][invoice["id"]].values(),
                       key=lambda x: x["sequence"])
        assert [(ln["lineObjectNumber"], ln["amountExcludingTax"]) for ln in lines] == \
            [("50900", Decimal("625.63")), ("50900", Decimal("-192.50"))]
        assert "W-UK-7" in lines[0]["description"] and "TE-0:x" in lines[0]["description"]
        assert _documents(sim, "salesInvoices") == []

    async def test_a_receivable_is_a_posted_sales_invoice_to_the_intercompany_customer_created_once(
            self, erp: BusinessCentralErp, sim: BusinessCentralSimulator) -> None:
        await erp.upsert_intercompany_charge("IC-W-R1", _charge("receivable", "EUR", "PRJ-UK-9"))
        await erp.upsert_intercompany_charge("IC-W-R2", _charge("receivable", "EUR", "PRJ-UK-9", ("3",)))
        customers = [c for c in sim.records(ENTITY, "customers") if c["number"] == "IC-UK01"]
        assert len(customers) == 1
        invoices = _documents(sim, "salesInvoices")
        assert {i["externalDocumentNumber"] for i in invoices} == {"IC-W-R1", "IC-W-R2"}
        assert all(i["status"] == "Open" and i["customerId"] == customers[0]["id"] and i["currencyCode"] == ""
                   for i in invoices)


class TestOnce:
    @pytest.mark.parametrize("lost", ["/purchaseInvoices", "Microsoft.NAV.post", "/$batch"])
    async def test_a_lost_answer_never_records_twice(self, erp: BusinessCentralErp, sim: BusinessCentralSimulator,
                                                     recording: Recording, lost: str) -> None:
        data = _charge("payable", "GBP", _project(sim))
        await erp.entity()
        recording.lose_next_answer_of = lost  # a GET's lost answer is retried; a write's fails the call
        with contextlib.suppress(VendorError):
            await erp.upsert_intercompany_charge("IC-O-P", data)
        assert recording.lose_next_answer_of is None
        charge, _ = await erp.upsert_intercompany_charge("IC-O-P", data)
        again, created = await erp.upsert_intercompany_charge("IC-O-P", data)
        assert again == charge and not created
        [invoice] = _documents(sim, "purchaseInvoices")
        assert invoice["status"] == "Open" and invoice["id"] == charge.id
        assert len([v for v in sim.records(ENTITY, "vendors") if v["number"] == "IC-UK01"]) == 1

    async def test_under_5xx_faults_a_retried_call_records_each_side_once(
            self, erp: BusinessCentralErp, sim: BusinessCentralSimulator, recording: Recording) -> None:
        await erp.entity()
        sim.faults.add(Fault(kind="server_error", status=503, rate=0.2, path="/api/"))
        recording.lose_writes = 0.2
        for n in range(6):
            side = "payable" if n % 2 else "receivable"
            data = _charge(side, "GBP" if side == "payable" else "EUR", _project(sim))
            for _ in range(40):
                try:
                    await erp.upsert_intercompany_charge(f"IC-F-{n}", data)
                    break
                except VendorError:
                    continue
        sim.faults.clear()
        recording.lose_writes = 0.0
        assert sim.faults.injected > 3 or recording.lost > 0
        page = await erp.list_intercompany_charges("2026-10", "UK01", 50, None)
        assert sorted(c.external_id for c in page.items) == [f"IC-F-{n}" for n in range(6)]
        assert len(_documents(sim, "salesInvoices")) == 3 and len(_documents(sim, "purchaseInvoices")) == 3
        documents = _documents(sim, "salesInvoices") + _documents(sim, "purchaseInvoices")
        assert all(d["status"] == "Open" for d in documents)
        assert len([c for c in sim.records(ENTITY, "customers") if c["number"] == "IC-UK01"]) == 1
        assert len([v for v in sim.records(ENTITY, "vendors") if v["number"] == "IC-UK01"]) == 1
