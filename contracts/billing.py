"""Commercial and billing objects: rate cards, contracts, ERP time postings, invoices, credits.

Billing is tracked per time-entry line, never per timesheet: each posting line and
invoice line names the entry (and its version) it comes from, so partial billing,
credits and re-approved entries are exact.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final, Literal

from msgspec import Meta

from contracts.common import ENTITY_CODE, MONTH_PATTERN, Currency, FrozenStruct, Money, NonEmpty, Struct
from contracts.erp import ErpRefusalReason

__all__ = [
    "Contract",
    "CreditMemo",
    "CreditMemoUpsert",
    "ExpensePostingBatch",
    "ExpensePostingLine",
    "ExpensePostingResult",
    "IntercompanyCharge",
    "IntercompanyChargeUpsert",
    "IntercompanyLine",
    "IntercompanySide",
    "Invoice",
    "InvoiceLine",
    "InvoiceStatus",
    "InvoiceUpsert",
    "Payment",
    "PaymentUpsert",
    "PostedExpense",
    "PostedTime",
    "PostedTimeTotal",
    "RateCard",
    "RateCardLine",
    "TimePostingBatch",
    "TimePostingJob",
    "TimePostingLine",
    "TimePostingResult",
]

Period = Annotated[str, Meta(pattern=MONTH_PATTERN, description="Billing period YYYY-MM.", examples=["2026-10"])]


class RateCardLine(FrozenStruct, frozen=True):
    role: str
    hourly_rate: Money


class RateCard(Struct):
    """Bill rates by role for one legal entity and currency, valid over a date range."""

    id: str
    name: str
    legal_entity_code: str
    currency: Currency
    valid_from: dt.date
    valid_to: dt.date | None = None
    lines: list[RateCardLine] = []


class Contract(Struct):
    """The commercial agreement behind a project: billing type, rate card, value."""

    id: str
    project_external_id: str
    legal_entity_code: str
    billing_type: Literal["time_and_materials", "fixed_fee", "mixed"]
    rate_card_id: str | None
    value: Money
    start_date: dt.date
    end_date: dt.date | None = None


class ExpensePostingLine(FrozenStruct, frozen=True):
    """One approved expense (at one version) as it is posted to the ERP as a cost on the project.

    ``amount`` is the cost in the project's currency (converted there when the expense was spent
    in another, with ``original_amount`` kept); the markup is billed on the invoice, never posted as cost.
    """

    line_key: Annotated[str, Meta(min_length=1, max_length=200,
                                  description="Expense id + version: the posting's idempotency key.")]
    project_external_id: NonEmpty
    employee_external_id: NonEmpty
    date: dt.date
    category: Annotated[str, Meta(min_length=1, max_length=60, description="The expense category, as captured.")]
    amount: Annotated[Money, Meta(description="The cost; negative reverses an earlier line.")]
    billable: bool
    original_amount: Annotated[Money | None, Meta(
        description="What was spent, in its own currency, when it differs from the project's.")] = None
    receipt_url: Annotated[str, Meta(max_length=500)] | None = None
    memo: Annotated[str, Meta(max_length=200)] | None = None


class ExpensePostingBatch(Struct):
    batch_key: Annotated[str, Meta(min_length=8, max_length=120,
                                   description="Stable key of the batch; the ERP posts a key once.")]
    legal_entity_id: NonEmpty
    lines: Annotated[list[ExpensePostingLine], Meta(min_length=1, max_length=200)]


class ExpensePostingResult(Struct):
    """What the ERP did with each line of a batch; posting the same batch key again returns this unchanged."""

    batch_key: str
    posted: Annotated[dict[str, str], Meta(description="line_key -> ERP record id of the posted cost.")] = {}
    failed: Annotated[dict[str, str], Meta(description="line_key -> ERP error.")] = {}
    refusals: Annotated[dict[str, ErpRefusalReason], Meta(
        description="line_key -> why the ERP refused the line, for the lines in `failed`.")] = {}


class PostedExpense(Struct):
    """An expense line as the ERP holds it, for reconciliation."""

    id: str
    line_key: str
    project_external_id: str
    employee_external_id: str
    date: dt.date
    category: str
    amount: Money
    billable: bool


class TimePostingLine(FrozenStruct, frozen=True):
    """One approved entry (at one version) as it is posted to the ERP as time (a NetSuite timeBill)."""

    line_key: Annotated[str, Meta(min_length=1, description="Entry id + version: the posting's idempotency key.")]
    project_external_id: NonEmpty
    employee_external_id: NonEmpty
    date: dt.date
    hours: Annotated[str, Meta(pattern=r"^-?\d+(\.\d+)?$", description="Decimal hours; negative reverses.")]
    rate: Money
    amount: Money
    billable: bool
    memo: str | None = None


class TimePostingBatch(Struct):
    batch_key: Annotated[str, Meta(min_length=8, max_length=120,
                                   description="Stable key of the batch; the ERP posts a key once.")]
    legal_entity_id: NonEmpty
    lines: Annotated[list[TimePostingLine], Meta(min_length=1, max_length=1000)]


class TimePostingJob(Struct):
    batch_key: str
    job_id: str
    status: Literal["pending", "complete", "failed"]


class TimePostingResult(Struct):
    batch_key: str
    status: Literal["pending", "complete", "failed"]
    posted: Annotated[dict[str, str], Meta(description="line_key -> ERP time record id.")] = {}
    failed: Annotated[dict[str, str], Meta(description="line_key -> ERP error.")] = {}
    refusals: Annotated[dict[str, ErpRefusalReason], Meta(
        description="line_key -> why the ERP refused the line, for the lines in `failed`.")] = {}


class PostedTime(Struct):
    """Time as the ERP holds it, for reconciliation."""

    id: str
    line_key: str
    project_external_id: str
    employee_external_id: str
    date: dt.date
    hours: Annotated[str, Meta(pattern=r"^-?\d+(\.\d+)?$", description="Decimal hours; negative for a reversal.")]
    amount: Money
    billable: bool


class PostedTimeTotal(Struct):
    """One project's billable time as the ERP holds it over a date range, summed: what a reconciliation compares,
    one row per project instead of one per posted line (an account's month is hundreds of thousands of lines)."""

    project_external_id: str
    billable_hours: Annotated[str, Meta(pattern=r"^-?\d+(\.\d+)?$",
                                        description="Decimal hours of the billable lines, reversals subtracted.")]
    billable_amount: Annotated[Money, Meta(description="The sum of the billable lines' amounts, each as posted.")]
    lines: Annotated[int, Meta(ge=0, description="Billable lines summed, reversals included.")]


class InvoiceLine(FrozenStruct, frozen=True):
    kind: Literal["time", "milestone", "expense", "credit"]
    description: NonEmpty
    quantity: Annotated[str, Meta(pattern=r"^-?\d+(\.\d+)?$", description="Hours for time lines, 1 otherwise.")]
    unit_price: Money
    amount: Money
    source_keys: Annotated[list[str], Meta(description="Posting line keys or milestone ids billed here.")] = []


class InvoiceUpsert(Struct):
    customer_id: NonEmpty
    project_external_id: NonEmpty
    legal_entity_id: NonEmpty
    period: Period
    currency: Currency
    lines: Annotated[list[InvoiceLine], Meta(min_length=1)]
    memo: str | None = None


InvoiceStatus = Literal["draft", "approved", "posted", "sent", "partially_paid", "paid", "credited", "void"]
"""An invoice's lifecycle as its ERP sees it: ``draft`` (psconnect's draft, not yet in the ledger) ->
``approved`` (approved, awaiting posting where the ERP separates the two) -> ``posted`` (in the receivables
ledger) -> ``sent`` (to the customer) -> ``partially_paid`` -> ``paid``; or ``credited`` (fully offset by
credit memos) or ``void``. An ERP that does not track one of the states skips it."""


class Invoice(Struct):
    """An invoice in the ERP: psconnect's draft, and the ERP's view of it once posted, paid or voided.

    ``amount_paid`` and ``amount_due`` are in the invoice's currency; credits applied reduce
    ``amount_due`` without counting as paid. ``updated_at`` is the ERP's last change, the cursor a
    status poll (`GET /invoices?updated_since=`) reads from.
    """

    id: str
    external_id: str
    customer_id: str
    project_external_id: str
    legal_entity_id: str
    period: Period
    currency: Currency
    lines: list[InvoiceLine]
    total: Money
    status: InvoiceStatus = "draft"
    amount_paid: Annotated[Money | None, Meta(description="Payments applied so far (null if the ERP says none).")] \
        = None
    amount_due: Annotated[Money | None, Meta(description="What the customer still owes (null while a draft).")] = None
    issue_date: Annotated[dt.date | None, Meta(description="The invoice date in the ERP.")] = None
    due_date: Annotated[dt.date | None, Meta(description="When payment is due (the ERP's terms).")] = None
    updated_at: Annotated[dt.datetime | None, Meta(description="When the ERP last changed the invoice (UTC).")] = None


class PaymentUpsert(Struct):
    """A customer payment applied to one posted invoice (cash application), keyed by psconnect's external id."""

    invoice_external_id: Annotated[str, Meta(min_length=1, max_length=80, description="The invoice paid.")]
    legal_entity_id: NonEmpty
    date: dt.date
    amount: Annotated[Money, Meta(description="In the invoice's currency; at most its amount due.")]
    reference: Annotated[str, Meta(max_length=120, description="The remittance's reference.")] | None = None


class Payment(Struct):
    id: str
    external_id: str
    invoice_external_id: str
    legal_entity_id: str
    date: dt.date
    amount: Money
    reference: str | None = None


class CreditMemoUpsert(Struct):
    customer_id: NonEmpty
    project_external_id: NonEmpty
    legal_entity_id: NonEmpty
    period: Period
    currency: Currency
    invoice_external_id: Annotated[str, Meta(min_length=1, description="The invoice this credit applies to.")]
    lines: Annotated[list[InvoiceLine], Meta(min_length=1)]
    reason: NonEmpty


class CreditMemo(Struct):
    id: str
    external_id: str
    invoice_external_id: str
    project_external_id: str
    period: Period
    currency: Currency
    lines: list[InvoiceLine]
    total: Money


IntercompanySide = Literal["receivable", "payable"]
"""Which entity's books a charge document goes into: the employing entity's (`receivable`, its consultant's
time charged to the other) or the project's entity's (`payable`, the cost of the borrowed consultant)."""


class IntercompanyLine(FrozenStruct, frozen=True):
    """One posted time line of a consultant staffed on another legal entity's project, at the transfer rate."""

    line_key: Annotated[str, Meta(min_length=1, max_length=200, description="The time line charged (its ledger key).")]
    project_external_id: NonEmpty
    employee_external_id: NonEmpty
    date: dt.date
    hours: Annotated[str, Meta(pattern=r"^-?\d+(\.\d+)?$", description="Decimal hours; negative reverses.")]
    transfer_rate: Annotated[Money, Meta(description="Per hour, in the charge's currency.")]
    amount: Money


INTERCOMPANY_DOCUMENT_LINES: Final = 90
"""Lines in one intercompany document: the fewest any ERP writes in one transaction (one request batch of at
most 100 operations, two of which write the document and its record), rounded down."""


class IntercompanyChargeUpsert(Struct):
    """One side of an intercompany charge: the same lines, under the same external id stem, go into both
    entities' books — a receivable in the employer's ERP, a payable in the project entity's ERP."""

    legal_entity_id: Annotated[str, Meta(min_length=1, description="The entity whose books this side goes into.")]
    counterparty: Annotated[str, Meta(pattern=f"^{ENTITY_CODE}$", description=(
        "The other entity's code (US01): its id differs between ERPs, its code does not."))]
    side: IntercompanySide
    period: Period
    currency: Currency
    lines: Annotated[list[IntercompanyLine], Meta(min_length=1, max_length=INTERCOMPANY_DOCUMENT_LINES)]
    memo: Annotated[str, Meta(max_length=200)] | None = None


class IntercompanyCharge(Struct):
    id: str
    external_id: str
    legal_entity_id: str
    counterparty: str
    side: IntercompanySide
    period: Period
    currency: Currency
    lines: list[IntercompanyLine]
    total: Money
