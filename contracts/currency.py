"""Exchange rates and amounts converted with them.

A rate is what one unit of ``base`` buys of ``quote`` on ``date`` (the day the rate took effect,
which may precede the day asked for). Conversion multiplies and rounds half-up to the cent, per
figure: a converted total is the sum of its converted lines, never a converted sum, so a report
adds up to the cent in the caller's currency as it does in the original ones.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Final, Literal

from msgspec import Meta

from contracts.common import Currency, FrozenStruct, Money

__all__ = ["CENT", "ConvertedMoney", "ExchangeRate", "RateSource", "convert"]

CENT: Final = Decimal("0.01")

RateSource = Literal["erp", "rate_table", "identity"]
"""Where a rate came from: the legal entity's ERP, the configured daily rate table, or none needed."""


class ExchangeRate(FrozenStruct, frozen=True):
    base: Currency
    quote: Currency
    rate: Annotated[Decimal, Meta(description="Units of `quote` for one unit of `base`, as decimal text.",
                                  examples=["1.0842"])]
    date: Annotated[dt.date, Meta(description="The day the rate took effect (on or before the day asked for).")]
    source: RateSource = "erp"


class ConvertedMoney(FrozenStruct, frozen=True):
    """An amount in the caller's currency beside the rate that produced it; the original is kept too."""

    amount: Money
    original: Money
    rate: Annotated[Decimal, Meta(description="The rate applied: units of `amount`'s currency per unit of the "
                                              "original's.")]
    rate_date: dt.date
    source: RateSource


def convert(money: Money, rate: ExchangeRate) -> ConvertedMoney:
    """`money` in `rate.quote`, rounded half-up to the cent (the documented rounding of every converted figure)."""
    if money.currency != rate.base:
        raise ValueError(f"a {rate.base} rate cannot convert {money.currency}")
    amount = (money.amount * rate.rate).quantize(CENT, ROUND_HALF_UP)
    return ConvertedMoney(amount=Money(amount=amount, currency=rate.quote), original=money, rate=rate.rate,
                          rate_date=rate.date, source=rate.source)
