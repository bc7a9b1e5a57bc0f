"""Accounting periods are resolved per legal entity: an entity's own row wins over a firm-wide one."""

from __future__ import annotations

import datetime as dt

from contracts.erp import AccountingPeriod
from process_apis.time_to_bill.enrich import periods_by_entity
from process_apis.time_to_bill.rules import PeriodRef
from system_apis.demo_firm import LEGAL_ENTITIES


def period(month: int, closed: bool, entity: str | None = None) -> AccountingPeriod:
    start = dt.date(2026, month, 1)
    return AccountingPeriod(id=f"P{month}{entity}", name=f"{month}/2026", start_date=start,
                            end_date=start + dt.timedelta(days=27), is_closed=closed, ar_locked=closed,
                            legal_entity_id=entity)


def test_firm_wide_period_applies_to_every_entity_unless_an_entity_overrides_it() -> None:
    periods = periods_by_entity([period(10, True, "LE-UK01"), period(10, False), period(8, True)],
                                list(LEGAL_ENTITIES))
    assert periods[("US01", "2026-10")] == PeriodRef(is_closed=False, ar_locked=False)
    assert periods[("UK01", "2026-10")] == PeriodRef(is_closed=True, ar_locked=True)
    assert all(periods[(code, "2026-08")].is_closed for code in ("US01", "UK01", "DE01"))
    assert ("US01", "2026-09") not in periods
