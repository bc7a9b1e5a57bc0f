"""What the ERP domain takes as an amount, checked before any adapter sees a request.

Every ERP books currency to the cent, so an expense or intercompany amount is one sent to the cent, in plain
decimal notation; hours and transfer rates are bounded alike. Decided from the Decimal's digits, never by
rounding it: ``quantize`` raises once a value has more digits than the context's 28 (a fuzzer's 33-digit
amount became a 500 in three adapters), and an ERP field rounds or overflows where we would not.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

from contracts.billing import ExpensePostingBatch, IntercompanyChargeUpsert
from contracts.problems import FieldError, ProblemError

__all__ = ["check_expense_batch", "check_intercompany_charge", "plain"]

INTEGER_DIGITS: Final = 15
"""Digits before the decimal point a value may have: no billing line comes near a trillion, and one refused
here never reaches an ERP field that would overflow or round it."""
RATE_PLACES: Final = 6
"""Decimal places of hours and transfer rates (what the process sends has at most two)."""


def plain(value: Decimal, places: int) -> bool:
    """A finite value in plain decimal notation (not ``1.5E+3``) with at most `places` decimals that are not
    trailing zeros (``5.100`` is to the cent) and at most `INTEGER_DIGITS` digits before the point."""
    if not value.is_finite():
        return False
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or exponent > 0:
        return False
    past = -exponent - places
    if past > 0 and any(digits[-past:]):
        return False
    return len(digits) + exponent <= INTEGER_DIGITS


def check_expense_batch(batch: ExpensePostingBatch) -> None:
    """Refuse (422, nothing posted) a batch with an amount no ERP books as sent."""
    errors = [_not_cents(f"/lines/{n}/{field}/amount", money.amount)
              for n, line in enumerate(batch.lines)
              for field, money in (("amount", line.amount), ("original_amount", line.original_amount))
              if money is not None and not plain(money.amount, 2)]
    _refuse(errors)


def check_intercompany_charge(data: IntercompanyChargeUpsert) -> None:
    """Refuse (422, nothing recorded) a charge whose lines are not in its currency (an ERP document has one) or
    whose amounts, hours or rates no ERP books as sent."""
    errors: list[FieldError] = []
    for n, line in enumerate(data.lines):
        for field, money in (("transfer_rate", line.transfer_rate), ("amount", line.amount)):
            if money.currency != data.currency:
                errors.append(FieldError(pointer=f"/lines/{n}/{field}/currency",
                                         detail=f"{money.currency} is not the charge's currency {data.currency}."))
        if not plain(line.amount.amount, 2):
            errors.append(_not_cents(f"/lines/{n}/amount/amount", line.amount.amount))
        for field, value in (("transfer_rate/amount", line.transfer_rate.amount), ("hours", _decimal(line.hours))):
            if value is None or not plain(value, RATE_PLACES):
                errors.append(FieldError(pointer=f"/lines/{n}/{field}",
                                         detail=f"At most {INTEGER_DIGITS} digits before the point and "
                                                f"{RATE_PLACES} after it."))
    _refuse(errors)


def _not_cents(pointer: str, amount: Decimal) -> FieldError:
    return FieldError(pointer=pointer, detail=f"{amount} is not an amount to the cent in plain decimal notation "
                                              f"(at most {INTEGER_DIGITS} digits before the point).")


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _refuse(errors: list[FieldError]) -> None:
    if errors:
        raise ProblemError(422, "validation-error", "Validation failed", errors[0].detail, errors=errors,
                           code="validation_failed")
