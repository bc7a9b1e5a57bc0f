"""Properties of the ledger under any sequence of approvals, re-approvals, retried and crashed posting runs.

Per project and period: invoiced − credits = Σ billable approved hours × applicable rate + Σ billable approved
expenses × (1 + markup) (of each entry's and expense's latest version), the ERP holds the same net time amount and
the approved expenses' net cost, and no line key is ever posted twice.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.common import Money
from process_apis.time_to_bill.expense_rules import validate_expense
from process_apis.time_to_bill.ledger import Ledger
from process_apis.time_to_bill.rules import PricedLine, quantize, validate
from tests.unit.time_to_bill.ttb_books import Books
from tests.unit.time_to_bill.ttb_factory import AS_OF, RATE, TERMS, entry, expense, memory_engine, project, reference

PROJECTS = {"PRJ-A0001": project(),
            "PRJ-A0002": project(external_id="PRJ-A0002", billing_type="mixed",
                                 expense_terms=msgspec.structs.replace(TERMS, markup_percent=Decimal("12.5")))}
MARKUP = {code: 1 + p.expense_terms.markup_percent / 100 for code, p in PROJECTS.items() if p.expense_terms}
DAYS = [dt.date(2026, 10, 5), dt.date(2026, 10, 30), dt.date(2026, 11, 2)]

approve = st.tuples(st.just("approve"), st.integers(0, 5), st.sampled_from(["1", "2.5", "6.5", "8"]),
                    st.sampled_from(sorted(PROJECTS)), st.booleans(), st.sampled_from(DAYS))
spend = st.tuples(st.just("spend"), st.integers(0, 4), st.sampled_from(["12.35", "80.00", "199.99", "0.05"]),
                 st.sampled_from(sorted(PROJECTS)), st.booleans(), st.sampled_from(DAYS),
                 st.sampled_from(["Travel", "Meals", "Mileage"]))
post = st.tuples(st.just("post"), st.booleans())
invoice = st.tuples(st.just("invoice"), st.sampled_from(sorted(PROJECTS)), st.sampled_from(["2026-10", "2026-11"]))
operations = st.lists(st.one_of(approve, spend, post, invoice), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_invoiced_equals_billable_time_plus_marked_up_expenses_and_nothing_posts_twice(
        ops: list[tuple[object, ...]]) -> None:
    books = Books(Ledger(memory_engine()))
    ref = reference(projects=PROJECTS)
    latest: dict[str, PricedLine] = {}
    runs = 0
    for op in ops:
        if op[0] == "approve":
            _, i, hours, code, billable, day = op
            line = validate(entry(f"TE-{i}", hours=Decimal(str(hours)), project_code=str(code), billable=bool(billable),
                                  date=day), ref, AS_OF)
            assert isinstance(line, PricedLine)
            books.ledger.record([line])
            latest[line.entry_id] = line
        elif op[0] == "spend":  # a new expense, or a changed version of one already approved (maybe invoiced)
            _, i, amount, code, billable, day, category = op
            spent = validate_expense(expense(f"EX-{i}", amount=Money(amount=Decimal(str(amount)), currency="USD"),
                                             project_code=str(code), billable=bool(billable), date=day,
                                             category=str(category)), ref, AS_OF, None)
            assert isinstance(spent, PricedLine)
            books.ledger.record([spent])
            latest[spent.entry_id] = spent
        elif op[0] == "post":
            runs += 1
            books.post(f"r{runs}", crash_after_erp=bool(op[1]))  # a crashed run is resumed below, or never
            if op[1]:
                books.post(f"r{runs}")
        else:
            books.invoice(PROJECTS[str(op[1])], str(op[2]))
    runs += 1
    books.post(f"r{runs}")
    for p in PROJECTS.values():
        for period in ("2026-10", "2026-11"):
            books.invoice(p, period)

    assert books.duplicates == []
    for code, p in PROJECTS.items():
        mine = [ln for ln in latest.values() if ln.project == code]
        expected_time = sum((quantize(ln.hours * RATE) for ln in mine if ln.kind == "time" and ln.billable),
                            Decimal(0))
        expected_expenses = sum((quantize(ln.rate * MARKUP[code]) for ln in mine if ln.kind == "expense"
                                 and ln.billable), Decimal(0))
        keys = {r.line_key for r in books.ledger.lines(code, "2026-10") + books.ledger.lines(code, "2026-11")}
        posted = sum((amount for key, amount in books.posted.items() if key in keys), Decimal(0))
        assert posted == expected_time
        costs = sum((cost for key, cost in books.costs.items() if key in keys), Decimal(0))
        assert costs == sum((ln.rate for ln in mine if ln.kind == "expense"), Decimal(0))  # billable or not
        milestones = sum((m.amount.amount for m in p.milestones), Decimal(0)) if p.billing_type == "mixed" else 0
        assert books.net_invoiced(code) == expected_time + expected_expenses + milestones
