"""The contracts are canonical: an entity's vendor account is a line of the connections file.

The swap test moves one legal entity to another account in the connections file — nothing else
changes — and bills the same approved October time to the same invoice totals with a clean
reconciliation. `SWAP_TARGETS` lists the moves: its ERP to an account of each ERP vendor installed,
its PSA and time to Certinia (one org holds both, as for CA01) or to a Kantata account that captures time and
expenses itself, its HR to BambooHR; a new vendor is
one more line. The acquired entities bill through their own accounts.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from system_apis.demo_delivery import EXPENSE_DEFECTS
from tests.integration.process_apis.time_to_bill.ttb_stack import PERIOD, TtbStack, connections_file, ttb_stack
from tests.stack import ERP_ACCOUNTS

SWAPPED = "DE01"
"""A home entity (the firm's own ERP account) with no seeded time defect: its run succeeds outright."""

SWAP_TARGETS = [
    *(pytest.param(("erp",), account, id=vendor) for vendor, account in ERP_ACCOUNTS.items()),
    pytest.param(("psa", "time"), {"vendor": "certinia", "simulator": {"demo_time": True}}, id="certinia"),
    pytest.param(("psa", "time"), {"vendor": "kantata", "simulator": {"demo_time": True}}, id="kantata"),
    pytest.param(("hr",), {"vendor": "bamboohr"}, id="bamboohr"),
]
"""(the domains the entity moves, the account they move to: a connection entry of the connections file)."""


async def invoice_totals(s: TtbStack, entity: str) -> dict[str, Decimal]:
    """Each project's October total of invoiced time, read through the ERP contract for the entity's account
    (milestones are billed from the ERP project's schedule, which not every ERP holds: Xero does not)."""
    totals: dict[str, Decimal] = {}
    cursor: str | None = None
    while True:
        params = {"period": PERIOD, "legal_entity": entity, "limit": 200, **({"cursor": cursor} if cursor else {})}
        response = await s.http.get("/system/erp/v1/invoices", params=params)
        assert response.status_code == 200, response.text
        for invoice in response.json()["items"]:
            project = invoice["project_external_id"]
            time = sum((Decimal(ln["amount"]["amount"]) for ln in invoice["lines"] if ln["kind"] == "time"), Decimal(0))
            if time:
                totals[project] = totals.get(project, Decimal(0)) + time
        cursor = response.json().get("next_cursor")
        if not cursor:
            return totals


async def bill_and_reconcile(s: TtbStack, entity: str) -> tuple[dict[str, Any], dict[str, Decimal]]:
    run = await s.bill(entity)
    assert run["status"] == "succeeded", run
    for rec in await s.reconcile(entity=entity):
        assert rec["discrepancies"] == [], rec
    return run["result"], await invoice_totals(s, entity)


@pytest.mark.parametrize(("domains", "target"), SWAP_TARGETS)
async def test_an_entity_moved_to_another_account_bills_the_same_totals(tmp_path: Path, domains: tuple[str, ...],
                                                                       target: dict[str, Any]) -> None:
    (tmp_path / "before").mkdir()
    async with ttb_stack(tmp_path / "before") as s:
        before, totals_before = await bill_and_reconcile(s, SWAPPED)

    (tmp_path / "after").mkdir()
    moved = connections_file(tmp_path / "after", accounts={"swapped": target},
                             routes={SWAPPED: dict.fromkeys(domains, "swapped")})
    async with ttb_stack(tmp_path / "after", connections=moved) as s:
        after, totals_after = await bill_and_reconcile(s, SWAPPED)
        for domain in domains:
            swapped = s.stack.gateway.vendors[domain].for_entity(SWAPPED)
            assert swapped.entry.connection.name == "swapped" and swapped.legal_entities == (SWAPPED,)
            assert swapped.simulator.faults.seen  # the run did read (and post) through the moved account
            assert s.stack.gateway.vendors[domain].for_entity("US01").legal_entities[:2] == ("US01", "UK01")

    assert totals_after == totals_before and sum(totals_before.values()) > 0
    assert (after["validated"], after["posted"]) == (before["validated"], before["posted"])
    assert (after["expenses_validated"], after["expenses_posted"]) == \
        (before["expenses_validated"], before["expenses_posted"])


async def sync_workers(s: TtbStack) -> None:
    """Worker sync: every worker, each to its employer's PSA and ERP accounts. CA01's workers come from its own
    HR account, so their ids name it (`ca01-hr:…`), and CA01's PSA and ERP know them by those ids."""
    started = await s.http.post("/process/worker-sync/v1/runs", json={"full": True},
                                headers={"Idempotency-Key": str(uuid.uuid4())})
    assert started.status_code in (200, 202), started.text
    run = await s.stack.wait_for(f"/process/worker-sync/v1/runs/{started.json()['id']}")
    assert run["status"] == "succeeded", run


async def test_the_acquired_entities_bill_through_their_own_erps(tmp_path: Path) -> None:
    """CA01 on Business Central (time per entry), AU01 on Xero (time summarised): the same process, the same
    contract, clean reconciliations; the firm's own ERP account holds none of it."""
    async with ttb_stack(tmp_path) as s:
        await sync_workers(s)  # CA01's workers come from its own HR account (their ids name it): its ERP learns them
        for entity, connection, vendor, posting, currency in (
                ("CA01", "ca01-erp", "businesscentral", "per_entry", "CAD"),
                ("AU01", "au01-erp", "xero", "summarised", "AUD")):
            own = s.stack.gateway.vendors["erp"].for_entity(entity)
            assert (own.entry.connection.name, own.entry.package.name) == (connection, vendor)
            capabilities = await s.http.get("/system/erp/v1/capabilities", params={"legal_entity": entity})
            assert capabilities.json()["time_posting"] == posting
            run = await s.bill(entity)
            # CA01's own time system (Certinia) holds the demo's deliberate expense defects, one per rule: those
            # alone are held; AU01's expenses are the firm's Harvest account's, whose defects are US01's.
            held = len(EXPENSE_DEFECTS) if entity == "CA01" else 0
            assert run["status"] == ("needs_attention" if held else "succeeded"), run
            assert (run["result"]["exceptions"], run["result"]["expense_exceptions"]) == ("0", str(held)), run
            assert int(run["result"]["posted"]) > 0 and int(run["result"]["expenses_posted"]) > 0
            records = await s.reconcile(entity=entity)
            assert records
            for rec in records:
                assert rec["discrepancies"] == [] and rec["posted_amount"] == rec["approved_amount"], rec
                assert rec["posted_expense_cost"] == rec["approved_expense_cost"], rec
            totals = await invoice_totals(s, entity)
            assert totals and all(t > 0 for t in totals.values())
            response = await s.http.get("/system/erp/v1/invoices", params={"period": PERIOD, "legal_entity": entity})
            assert {i["currency"] for i in response.json()["items"]} == {currency}
        assert not s.sim("erp").ledger.bills  # the firm's own ERP account holds none of it
