"""The receivables widget: accounts-receivable aging and days sales outstanding per legal entity and customer.

Computed from the invoices the receivables process last read from each ERP
(`process_apis/receivables/state.py`): an invoice is open while it is posted, sent or partially
paid with an amount due; its age is the days from its due date to `as_of`. DSO over a window of
`days` is open / invoiced-in-the-window x days.

With a group `currency`, every open invoice's amount due is converted at its legal entity's rate
for `as_of` (`process_apis/exchange_rates.py`) and rounded to the cent, and every converted
figure — a bucket, a row, the group total — is the sum of its converted invoices, so they add up
to the cent. The rates used are listed with their dates and sources.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Final, get_args

import sqlalchemy as sa

from contracts.common import Money
from contracts.currency import CENT, ConvertedMoney, ExchangeRate
from contracts.dashboards import ArBucket, ArBucketName, ArRow, ArTotal, ReceivablesReport
from experience_apis.dashboards.store import Entities
from foundation.paging import decode_cursor, encode_cursor
from foundation.units import from_units
from process_apis.exchange_rates import RateBook
from process_apis.receivables.state import OPEN, receivable_invoices

__all__ = ["receivables_report"]

BUCKETS: Final[tuple[ArBucketName, ...]] = get_args(ArBucketName)
DSO_PLACES: Final = Decimal("0.1")


def _bucket(days_past_due: int) -> ArBucketName:
    if days_past_due <= 0:
        return "current"
    return "1-30" if days_past_due <= 30 else "31-60" if days_past_due <= 60 else "61-90" \
        if days_past_due <= 90 else "90+"


@dataclass
class _Sums:
    """Sums of one group in its own currency (units) and, when converting, in the group currency (cents)."""

    currency: str
    open: int = 0
    invoiced: int = 0
    count: int = 0
    buckets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    converted: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(BUCKETS, Decimal(0)))
    rate: ExchangeRate | None = None

    def money(self, units: int) -> Money:
        return Money(amount=from_units(units).quantize(CENT, ROUND_HALF_UP), currency=self.currency)

    def converted_money(self, amount: Decimal, original: Money) -> ConvertedMoney | None:
        if self.rate is None:
            return None
        return ConvertedMoney(amount=Money(amount=amount, currency=self.rate.quote), original=original,
                              rate=self.rate.rate, rate_date=self.rate.date, source=self.rate.source)

    def buckets_out(self) -> list[ArBucket]:
        return [ArBucket(bucket=b, amount=self.money(self.buckets[b]),
                         converted=self.converted_money(self.converted[b], self.money(self.buckets[b])))
                for b in BUCKETS]

    def overdue(self) -> int:
        return self.open - self.buckets["current"]

    def dso(self, days: int) -> Decimal | None:
        if not self.invoiced:
            return None
        return (Decimal(self.open) / Decimal(self.invoiced) * days).quantize(DSO_PLACES, ROUND_HALF_UP)


async def receivables_report(engine: sa.Engine, rates: RateBook, entities: Entities, as_of: dt.date, days: int,
                             currency: str | None, limit: int, cursor: str | None) -> ReceivablesReport:
    offset = decode_cursor(cursor, "dashboards.receivables")
    r = receivable_invoices
    window_start = max(dt.date.min + dt.timedelta(days=days), as_of) - dt.timedelta(days=days)  # no year 0
    query = sa.select(r.c.legal_entity_code, r.c.customer_id, r.c.currency, r.c.status, r.c.due, r.c.total,
                      r.c.issue_date, r.c.due_date).where(
        sa.or_(r.c.status.in_(sorted(OPEN)), sa.and_(r.c.issue_date > window_start, r.c.issue_date <= as_of)))
    if entities is not None:
        query = query.where(r.c.legal_entity_code.in_(sorted(entities)))
    with engine.connect() as conn:
        invoices = conn.execute(query).all()
    rows: dict[tuple[str, str, str], _Sums] = {}
    totals: dict[tuple[str, str], _Sums] = {}
    used: dict[tuple[str, str], ExchangeRate] = {}
    for entity, customer, cur, status, due, total, issued, due_date in invoices:
        row = rows.setdefault((entity, customer, cur), _Sums(cur))
        entity_total = totals.setdefault((entity, cur), _Sums(cur))
        if currency is not None and (entity, cur) not in used:
            used[(entity, cur)] = await rates.rate(entity, cur, currency, as_of)
        for sums in (row, entity_total):
            sums.rate = used.get((entity, cur))
            if issued is not None and window_start < issued <= as_of and status not in ("draft", "void"):
                sums.invoiced += int(total)
            if status in OPEN and int(due) > 0:
                bucket = _bucket((as_of - due_date).days if due_date is not None else 0)
                sums.open += int(due)
                sums.count += 1
                sums.buckets[bucket] += int(due)
                if sums.rate is not None:
                    sums.converted[bucket] += (from_units(int(due)) * sums.rate.rate).quantize(CENT,
                                                                                                    ROUND_HALF_UP)
    ordered = sorted(rows.items())
    page = ordered[offset:offset + limit]
    following = encode_cursor(offset + limit, "dashboards.receivables") if len(ordered) > offset + limit else None
    items = [ArRow(legal_entity_code=e, customer_id=c, currency=cur, open=s.money(s.open), overdue=s.money(s.overdue()),
                   buckets=s.buckets_out(), invoiced=s.money(s.invoiced), dso=s.dso(days), open_invoices=s.count,
                   converted_open=s.converted_money(sum(s.converted.values(), Decimal(0)), s.money(s.open)))
             for (e, c, cur), s in page]
    entity_rows = [ArTotal(legal_entity_code=e, currency=cur, open=s.money(s.open), overdue=s.money(s.overdue()),
                           buckets=s.buckets_out(), invoiced=s.money(s.invoiced), dso=s.dso(days),
                           converted_open=s.converted_money(sum(s.converted.values(), Decimal(0)), s.money(s.open)))
                   for (e, cur), s in sorted(totals.items())]
    group_open = group_overdue = None
    if currency is not None:
        converted: dict[str, Decimal] = defaultdict(Decimal)
        for sums in totals.values():
            for name, amount in sums.converted.items():
                converted[name] += amount
        group_open = Money(amount=sum(converted.values(), Decimal(0)).quantize(CENT), currency=currency)
        group_overdue = Money(amount=(sum(converted.values(), Decimal(0)) - converted["current"]).quantize(CENT),
                              currency=currency)
    return ReceivablesReport(as_of=as_of, days=days, currency=currency, entities=entity_rows, items=items,
                             group_open=group_open, group_overdue=group_overdue,
                             rates=[used[k] for k in sorted(used)], next_cursor=following)
