"""Revenue recognised per project and period (the time-to-bill process's revenue schedule)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from contracts.common import MONTH_PATTERN, Currency, Money, Struct

__all__ = ["RecognitionMethod", "RevenuePeriod"]

RecognitionMethod = Literal["time_and_materials", "milestones", "percent_complete", "mixed"]
"""time_and_materials: as time posts; milestones: on acceptance of each milestone; percent_complete: the contract
value times hours posted over planned hours; mixed: time as posted plus milestones."""


class RevenuePeriod(Struct):
    project: str
    legal_entity_code: Annotated[str, Meta(examples=["US01"])]
    period: Annotated[str, Meta(pattern=MONTH_PATTERN, examples=["2026-10"])]
    currency: Currency
    method: RecognitionMethod
    recognised: Annotated[Money, Meta(description="Revenue recognised in this period.")]
    cumulative: Annotated[Money, Meta(description="Recognised to the end of this period.")]
    billed_cumulative: Annotated[Money, Meta(description="Invoiced (less credits) to the end of this period.")]
    work_in_progress: Annotated[Money, Meta(description="cumulative - billed_cumulative: recognised but not yet "
                                                        "billed (negative: billed ahead of the work).")]
    contract_value: Annotated[Money | None, Meta(description="The contract's value (fixed fee: the cap).")] = None
