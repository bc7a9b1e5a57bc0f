"""UTC instants, and their round trip through SQLite (which stores them naive)."""

from __future__ import annotations

import datetime as dt
from typing import overload

__all__ = ["as_utc", "utcnow"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@overload
def as_utc(value: dt.datetime) -> dt.datetime: ...


@overload
def as_utc(value: None) -> None: ...


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
