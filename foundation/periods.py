"""Accounting periods: the `YYYY-MM` every contract names a month by (`contracts.common.MONTH_PATTERN`)."""

from __future__ import annotations

import datetime as dt

__all__ = ["month_bounds", "month_of"]


def month_bounds(period: str) -> tuple[dt.date, dt.date]:
    """The first and last day of a `YYYY-MM` period. December ends on the 31st without stepping into the next
    year, so 9999-12 (a period the contracts accept) has an end too."""
    year, month = (int(x) for x in period.split("-"))
    last = dt.date(year, 12, 31) if month == 12 else dt.date(year, month + 1, 1) - dt.timedelta(days=1)
    return dt.date(year, month, 1), last


def month_of(day: dt.date) -> tuple[dt.date, dt.date]:
    """The first and last day of the month `day` falls in."""
    return month_bounds(f"{day:%Y-%m}")
