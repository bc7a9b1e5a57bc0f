"""Instants in vendors' query strings keep a four-digit year and are rounded down, whatever the input's zone."""

from __future__ import annotations

import datetime as dt

from system_apis._internal.instants import utc_text


def test_an_early_year_is_padded_to_four_digits() -> None:
    assert utc_text(dt.datetime(87, 2, 20, 2, 20, 55, 61261, tzinfo=dt.UTC)) == "0087-02-20T02:20:55"
    assert utc_text(dt.datetime(87, 2, 20, 2, 20, 55, 61261), "milliseconds") == "0087-02-20T02:20:55.061"


def test_an_offset_is_turned_into_utc() -> None:
    east = dt.timezone(dt.timedelta(hours=2))
    assert utc_text(dt.datetime(2026, 10, 1, 1, 30, tzinfo=east)) == "2026-09-30T23:30:00"
