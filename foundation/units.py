"""Exact decimal amounts as integers of 1/10,000, for sums in SQL.

SQLite has no exact decimal type, and summing Decimal text in Python row by row is slow; integers
of 1/10,000 hold cents and hours to four places exactly and sum the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Final

__all__ = ["UNIT", "from_units", "to_units"]

UNIT: Final = 10_000


def to_units(value: Decimal) -> int:
    return int((value * UNIT).quantize(Decimal(1), ROUND_HALF_UP))


def from_units(units: int | None) -> Decimal:
    return Decimal(units or 0) / UNIT
