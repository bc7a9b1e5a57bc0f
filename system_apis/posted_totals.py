"""Posted-time totals for an ERP that cannot sum: its posted-time listing read to the end and summed here.

NetSuite sums in SuiteQL (one row per project); Business Central's and Xero's APIs have no aggregate of the
lines psconnect posts, so their adapters read the listing whole and sum it with `summed_listing`. Either way
the caller above the system APIs reads one row per project instead of every line: the listing's lines cross
one hop (vendor to adapter) instead of two, and a reconciliation pages through totals, not hundreds of
thousands of lines. A page of totals after the first reads the listing again: an account's projects fit one
page of 1,000 in the firms we serve, so that is rare, and it is never wrong.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Final

from contracts.billing import PostedTime, PostedTimeTotal
from contracts.common import Money, Page
from foundation.paging import decode_cursor, encode_cursor

__all__ = ["READ_PAGE", "ListPostedTime", "summed", "summed_listing"]

READ_PAGE: Final = 1000
"""Lines per page read from the listing (the posted-time list's largest page)."""


def summed(lines: Iterable[PostedTime]) -> list[PostedTimeTotal]:
    """Per project, in project order, its billable lines' hours and amounts; a project with none is absent."""
    sums: dict[str, tuple[Decimal, Decimal, str, int]] = {}
    for line in lines:
        if line.billable:
            hours, amount, _, count = sums.get(line.project_external_id, (Decimal(0), Decimal(0), "", 0))
            sums[line.project_external_id] = (hours + Decimal(line.hours), amount + line.amount.amount,
                                              line.amount.currency, count + 1)
    return [PostedTimeTotal(project_external_id=project, billable_hours=str(hours),
                            billable_amount=Money(amount=amount, currency=currency), lines=count)
            for project, (hours, amount, currency, count) in sorted(sums.items())]


ListPostedTime = Callable[[str | None, dt.date | None, dt.date | None, int, str | None], Awaitable[Page[PostedTime]]]
"""An adapter's `list_posted_time` (project, from, to, limit, cursor)."""


async def summed_listing(list_posted_time: ListPostedTime, project_external_id: str | None,
                         date_from: dt.date | None, date_to: dt.date | None, limit: int, cursor: str | None,
                         list_id: str) -> Page[PostedTimeTotal]:
    """The page at `cursor` of the totals of every line `list_posted_time` lists with these filters; `list_id`
    names the list its cursors belong to."""
    offset = decode_cursor(cursor, list_id)
    page = await list_posted_time(project_external_id, date_from, date_to, READ_PAGE, None)
    lines = list(page.items)
    while page.next_cursor:
        page = await list_posted_time(project_external_id, date_from, date_to, READ_PAGE, page.next_cursor)
        lines += page.items
    totals = summed(lines)
    following = offset + limit
    return Page(items=totals[offset:following],
                next_cursor=encode_cursor(following, list_id) if following < len(totals) else None)
