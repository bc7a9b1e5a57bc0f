"""The billing ledger, per line: the failure modes of VENDOR-NOTES ("seen in open-source ERPs") as regressions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from contracts.time import TimeEntry
from foundation.db import metadata
from process_apis.time_to_bill.ledger import ExceptionLine, Ledger
from process_apis.time_to_bill.rules import PricedLine, Reference, line_key, validate
from tests.unit.time_to_bill.ttb_books import Books
from tests.unit.time_to_bill.ttb_factory import AS_OF, entry, memory_engine, project, reference

P1, P2 = project(), project(external_id="PRJ-A0002")


def record(ledger: Ledger, ref: Reference, *entries: TimeEntry) -> None:
    outcomes: list[PricedLine | ExceptionLine] = []
    for e in entries:
        result = validate(e, ref, AS_OF)
        if isinstance(result, PricedLine):
            outcomes.append(result)
        else:
            outcomes.append(ExceptionLine(line_key=line_key(e), entry_id=e.id, project=e.project_code, worker_id="",
                                          legal_entity_code="US01", period=f"{e.date:%Y-%m}", date=e.date,
                                          hours=e.hours, billable=e.billable, exception_id="exc_1",
                                          reason=result[0].code, payload=b"{}"))
    ledger.record(outcomes)


@pytest.fixture
def books() -> Books:
    return Books(Ledger(memory_engine()))


class TestPerLineBilling:
    def test_invoicing_one_project_of_a_multi_project_timesheet_leaves_the_other_billable(self, books: Books) -> None:
        record(books.ledger, reference(), entry("TE-1"), entry("TE-2", project_code="PRJ-A0002"))
        books.post("r1")
        books.invoice(P1, "2026-10")
        assert books.ledger.invoiceable("PRJ-A0001", "2026-10") == []
        assert [r.entry_id for r in books.ledger.invoiceable("PRJ-A0002", "2026-10")] == ["TE-2"]
        books.invoice(P2, "2026-10")
        assert books.net_invoiced("PRJ-A0002") == Decimal("1365.00")

    def test_unapproved_and_future_dated_time_never_reaches_an_invoice(self, books: Books) -> None:
        record(books.ledger, reference(), entry("TE-1", status="submitted"), entry("TE-2", date=dt.date(2026, 11, 20)),
               entry("TE-3"))
        books.post("r1")
        books.invoice(P1, "2026-10")
        books.invoice(P1, "2026-11")
        assert set(books.posted) == {line_key(entry("TE-3"))}
        assert books.net_invoiced("PRJ-A0001") == Decimal("1365.00")
        assert books.ledger.state_counts()["exception"] == 2

    def test_after_a_partial_invoice_the_remainder_is_billed_later(self, books: Books) -> None:
        record(books.ledger, reference(), entry("TE-1"))
        books.post("r1")
        books.invoice(P1, "2026-10")
        record(books.ledger, reference(), entry("TE-1"), entry("TE-2", date=dt.date(2026, 10, 20)))
        books.post("r2")
        books.invoice(P1, "2026-10")
        assert len(books.invoices) == 2
        assert books.net_invoiced("PRJ-A0001") == Decimal("2730.00")

    def test_invoicing_one_period_neither_blocks_nor_touches_the_next(self, books: Books) -> None:
        record(books.ledger, reference(), entry("TE-1"), entry("TE-2", date=dt.date(2026, 11, 2)))
        books.post("r1")
        books.invoice(P1, "2026-10")
        books.invoice(P1, "2026-10")  # invoicing the same period again bills nothing more
        assert len(books.invoices) == 1
        nov = books.ledger.invoiceable("PRJ-A0001", "2026-11")
        assert [(r.entry_id, r.amount) for r in nov] == [("TE-2", Decimal("1365.00"))]
        books.invoice(P1, "2026-11")
        assert books.net_invoiced("PRJ-A0001") == Decimal("2730.00")

    def test_a_credit_note_does_not_distort_the_next_period(self, books: Books) -> None:
        record(books.ledger, reference(), entry("TE-1"), entry("TE-2", date=dt.date(2026, 11, 2)))
        books.post("r1")
        books.invoice(P1, "2026-10")
        record(books.ledger, reference(), entry("TE-1", hours=Decimal("4")))  # corrected after invoicing
        books.post("r2")
        books.invoice(P1, "2026-10")
        books.invoice(P1, "2026-11")
        assert list(books.credits.values()) == [Decimal("-1365.00")]
        oct_net = sum((v for k, v in books.invoices.items() if "-2026-10-" in k), Decimal(0)) + \
            sum(books.credits.values(), Decimal(0))
        assert oct_net == Decimal("840.00")
        assert sum((v for k, v in books.invoices.items() if "-2026-11-" in k), Decimal(0)) == Decimal("1365.00")

    def test_a_period_invoice_does_not_zero_other_lines(self, books: Books) -> None:
        record(books.ledger, reference(), entry("TE-1"), entry("TE-2", project_code="PRJ-A0002"),
               entry("TE-3", date=dt.date(2026, 11, 2)))
        books.post("r1")
        books.invoice(P1, "2026-10")
        others = books.ledger.lines("PRJ-A0002", "2026-10") + books.ledger.lines("PRJ-A0001", "2026-11")
        assert [(r.state, r.amount) for r in others] == [("posted", Decimal("1365.00"))] * 2


class TestChangedAfterApproval:
    def test_the_same_version_again_posts_nothing(self, books: Books) -> None:
        record(books.ledger, reference(), entry("TE-1"))
        books.post("r1")
        record(books.ledger, reference(), entry("TE-1", notes="re-approved"))
        assert books.post("r2") == 0
        assert books.duplicates == []

    def test_a_changed_entry_posts_its_difference_exactly_once(self, books: Books) -> None:
        record(books.ledger, reference(), entry("TE-1"))
        books.post("r1")
        record(books.ledger, reference(), entry("TE-1", hours=Decimal("8")))
        record(books.ledger, reference(), entry("TE-1", hours=Decimal("8")))
        books.post("r2")
        assert sorted(books.posted.values()) == [Decimal("-1365.00"), Decimal("1365.00"), Decimal("1680.00")]
        assert books.duplicates == []

    def test_a_version_changed_before_posting_is_simply_replaced(self, books: Books) -> None:
        record(books.ledger, reference(), entry("TE-1"))
        record(books.ledger, reference(), entry("TE-1", hours=Decimal("8")))
        books.post("r1")
        assert list(books.posted.values()) == [Decimal("1680.00")]

    def test_back_to_an_earlier_version_reposts_it_under_a_fresh_key(self, books: Books) -> None:
        record(books.ledger, reference(), entry("TE-1"))
        books.post("r1")
        record(books.ledger, reference(), entry("TE-1", hours=Decimal("8")))
        books.post("r2")
        record(books.ledger, reference(), entry("TE-1"))
        books.post("r3")
        assert sum(books.posted.values(), Decimal(0)) == Decimal("1365.00")
        assert books.duplicates == []


class TestPostingExactlyOnce:
    def test_a_run_killed_after_the_erp_accepted_a_batch_resumes_without_reposting(self, books: Books) -> None:
        record(books.ledger, reference(), *[entry(f"TE-{i}") for i in range(7)])
        books.post("r1", crash_after_erp=True)
        books.post("r1")
        assert len(books.posted) == 7 and books.duplicates == []

    def test_two_runs_never_claim_the_same_line(self, books: Books) -> None:
        record(books.ledger, reference(), *[entry(f"TE-{i}") for i in range(7)])
        first = books.ledger.claim("US01", "a:b1", limit=4)
        second = books.ledger.claim("US01", "b:b1", limit=4)
        assert len(first) == 4 and len(second) == 3
        assert not {r.line_key for r in first} & {r.line_key for r in second}

    def test_a_released_claim_is_posted_by_a_later_run(self, books: Books) -> None:
        record(books.ledger, reference(), entry("TE-1"))
        assert len(books.ledger.claim("US01", "dead:b1")) == 1
        assert books.post("r2") == 0
        books.ledger.release("dead:b1")
        assert books.post("r3") == 1

    def test_a_ledger_created_before_the_claim_indexes_gets_them_at_start_up(self) -> None:
        engine = memory_engine()
        with engine.begin() as conn:  # the ledger as an earlier release created it
            conn.execute(sa.text("DROP INDEX ix_ttb_ledger_unclaimed"))
            conn.execute(sa.text("DROP INDEX ix_ttb_ledger_claimed"))
            conn.execute(sa.text("CREATE INDEX ix_ttb_ledger_claim ON ttb_ledger (claim)"))
        metadata.create_all(engine)  # what every start-up runs
        metadata.create_all(engine)  # and again: idempotent
        names = {ix["name"] for ix in sa.inspect(engine).get_indexes("ttb_ledger")}
        assert {"ix_ttb_ledger_unclaimed", "ix_ttb_ledger_claimed"} <= names and "ix_ttb_ledger_claim" not in names
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT line_key FROM ttb_ledger WHERE legal_entity_code = 'US01' "
                "AND state = 'validated' AND claim IS NULL ORDER BY line_key LIMIT 1000").all()
        assert "ix_ttb_ledger_unclaimed" in str(plan)  # a batch is read off the index's front, not sorted

    def test_claims_take_the_lowest_unclaimed_keys_in_order(self, books: Books) -> None:
        record(books.ledger, reference(), *[entry(f"TE-{i}") for i in range(7)])
        keys = sorted(line_key(entry(f"TE-{i}")) for i in range(7))
        first = books.ledger.claim("US01", "a:b1", limit=3)
        assert [r.line_key for r in first] == keys[:3]
        assert [r.line_key for r in books.ledger.claim("US01", "a:b1", limit=3)] == keys[:3]  # a retry: the same
        assert [r.line_key for r in books.ledger.claim("US01", "a:b2", limit=3)] == keys[3:6]
        assert books.ledger.claim("US02", "a:b3", limit=3) == []


class TestMilestones:
    def test_a_milestone_due_in_the_period_is_billed_once(self, books: Books) -> None:
        mixed = project(billing_type="mixed")
        record(books.ledger, reference(), entry("TE-1"))
        books.post("r1")
        books.invoice(mixed, "2026-10")
        books.invoice(mixed, "2026-10")
        assert books.net_invoiced("PRJ-A0001") == Decimal("6365.00")

    def test_fixed_fee_bills_milestones_not_time(self, books: Books) -> None:
        fixed = project(billing_type="fixed_fee")
        record(books.ledger, reference(), entry("TE-1"))
        books.post("r1")
        books.invoice(fixed, "2026-10")
        books.invoice(fixed, "2026-11")
        assert books.net_invoiced("PRJ-A0001") == Decimal("5000.00")
