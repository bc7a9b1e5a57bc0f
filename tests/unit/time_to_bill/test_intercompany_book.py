"""The intercompany book charges each posted line of a seconded consultant once, at cost plus, reversals included."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec

import process_apis.time_to_bill.intercompany  # noqa: F401  (declares its table before the engine creates them)
from process_apis.time_to_bill.intercompany import IntercompanyBook, transfer_rate
from process_apis.time_to_bill.ledger import Ledger
from process_apis.time_to_bill.rules import PricedLine, WorkerRef, validate
from tests.unit.time_to_bill.ttb_factory import AS_OF, entry, memory_engine, reference

ANA = WorkerRef(id="W-00001", email="ana@example.com", status="active", hire_date=dt.date(2020, 1, 1),
                legal_entity_code="UK01", cost_rate=Decimal("80.00"), cost_currency="GBP")
BEN = WorkerRef(id="W-00002", email="ben@example.com", status="active", hire_date=dt.date(2020, 1, 1),
                legal_entity_code="US01", cost_rate=Decimal("90.00"), cost_currency="USD")


def markup(employer: str, project_entity: str) -> Decimal:
    return Decimal("12.5") if (employer, project_entity) == ("UK01", "US01") else Decimal(0)


def _posted(ledger: Ledger, lines: list[PricedLine]) -> None:
    ledger.record(lines)
    rows = ledger.claim("US01", "run:b1", 100)
    ledger.mark_posted({r.line_key: f"TB-{i}" for i, r in enumerate(rows)}, {})


def test_only_seconded_consultants_are_charged_once_at_cost_plus_and_a_change_is_charged_as_the_difference() -> None:
    engine = memory_engine()
    ledger, book = Ledger(engine), IntercompanyBook(engine)
    roles = {("PRJ-A0001", email): "consultant" for email in ("ana@example.com", "ben@example.com")}
    ref = reference(workers={"ana@example.com": ANA, "ben@example.com": BEN}, roles=roles)
    lines = [validate(entry(f"TE-{i}", user_email=email, hours=Decimal("2.5")), ref, AS_OF)
             for i, email in enumerate(["ana@example.com", "ben@example.com", "ana@example.com"])]
    assert all(isinstance(ln, PricedLine) for ln in lines)
    _posted(ledger, lines)  # type: ignore[arg-type]

    assert book.assign("US01", ref, markup) == 2  # Ana's two lines; Ben is US01's own
    (document,) = book.pending("US01")
    rate = transfer_rate(Decimal("80.00"), Decimal("12.5"))
    assert rate == Decimal("90.00") and document.currency == "GBP" and document.employer == "UK01"
    assert [(ln.hours, ln.amount.amount) for ln in document.lines] == [("2.5", Decimal("225.00"))] * 2
    external_id, body = document.side("receivable", "LE-UK01")
    assert external_id.endswith("-R") and body.counterparty == "US01" and body.legal_entity_id == "LE-UK01"
    assert document.side("payable", "LE-US01")[1].counterparty == "UK01"
    assert book.assign("US01", ref, markup) == 0  # nothing charged twice
    book.mark_charged(document.stem)
    assert book.pending("US01") == []

    # Ana's entry changes (5 h, not 2.5) and her cost rate rises: the reversal is charged back at the old rate.
    dearer = reference(workers={"ana@example.com": msgspec.structs.replace(ANA, cost_rate=Decimal("100.00")),
                                "ben@example.com": BEN}, roles=roles)
    changed = validate(entry("TE-0", user_email="ana@example.com", hours=Decimal("5")), dearer, AS_OF)
    assert isinstance(changed, PricedLine)
    ledger.record([changed])
    rows = ledger.claim("US01", "run2:b1", 100)
    ledger.mark_posted({r.line_key: f"TB-x{i}" for i, r in enumerate(rows)}, {})
    assert book.assign("US01", dearer, markup) == 2
    (second,) = book.pending("US01")
    amounts = sorted(ln.amount.amount for ln in second.lines)
    assert amounts == [Decimal("-225.00"), Decimal("562.50")]  # -2.5 x 90.00; 5 x 112.50
    assert second.stem != document.stem
