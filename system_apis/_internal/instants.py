"""An instant as vendors' query strings take it: UTC, four-digit year.

strftime's ``%Y`` writes year 87 as ``87`` (glibc does not pad it), which no vendor parses: a schema-valid
``updated_since=0087-02-20T…`` became a malformed SOQL query and a 422 from Certinia. ``isoformat`` always
pads the year to four digits.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

__all__ = ["utc_text"]


def utc_text(instant: dt.datetime, timespec: Literal["seconds", "milliseconds"] = "seconds") -> str:
    """``yyyy-mm-ddThh:mm:ss[.fff]`` in UTC, no offset, rounded down (a naive instant is taken as UTC)."""
    utc = instant.replace(tzinfo=dt.UTC) if instant.tzinfo is None else instant.astimezone(dt.UTC)
    return utc.replace(tzinfo=None).isoformat(timespec=timespec)
