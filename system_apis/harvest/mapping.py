"""Harvest v2 wire records <-> canonical time objects. Pure functions, no I/O.

Reading of the spec (system_apis/harvest/spec/harvest-v2.openapi.yaml, TimeEntry):

- **status** — Harvest has no status field. `is_closed` is "approved via Timesheet
  Approval", so closed -> `approved`. A timesheet submitted for approval is locked
  while it waits (`is_locked`, reason "Submitted for approval"); any other lock
  reason (a locked time period, an invoice) on an unclosed entry also means the owner
  can no longer change it, so a locked, unclosed entry reads as `submitted`; an
  unlocked one is the owner's `draft`. Harvest returns a rejected timesheet to its
  owner unlocked, so a rejection reads as `draft` again — it has no state of its own.
- **user_email / project_code / currency** — a time entry names its user and project
  by Harvest id only (`{id, name}`); the email comes from `/v2/users`, the code
  (psconnect's `PRJ-…` ERP external id) and the currency (the client's) from
  `/v2/projects`. The adapter caches both and passes them in.
- **billable_rate** — a JSON number on the wire (decoded straight to `Decimal`, never
  through float) priced in the project client's currency; null on non-billable time.
- **hours** — `hours` as tracked, not `rounded_hours`: psconnect prices time itself.

Expenses (spec `Expense`, https://help.getharvest.com/api-v2/expenses-api/expenses/expenses/):

- **status** — the same two flags, read the same way (`status_of`): Harvest approves
  expenses in the same timesheet approval as time, and its `Expense` has `is_closed`
  ("whether the expense has been approved") and `is_locked`, but no approval status.
- **approved_at** — Harvest records no approval instant on an expense (nor on a time
  entry), so it stays null rather than guessed from `updated_at`, which also moves when
  the expense is invoiced.
- **amount** — `total_cost`, in the currency of the project's client (as for time
  entries; the adapter passes the project's). **units / unit_price** only for a
  unit-priced category (one with a `unit_name` or `unit_price`: Mileage); any other
  expense carries `units: 1` on the wire, which means nothing here.
- **category** — the expense category's name; **receipt_url** — `receipt.url`, null
  when no receipt is attached.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Final

from contracts.common import Money
from contracts.time import Expense, TimeEntry, TimeEntryStatus, TimeProject, UninvoicedProject
from system_apis._internal.instants import utc_text
from system_apis.harvest import _wire as wire

__all__ = [
    "LOCKED_APPROVED",
    "LOCKED_INVOICED",
    "LOCKED_SUBMITTED",
    "SOURCE",
    "expense_to_canonical",
    "money",
    "project_to_canonical",
    "status_flags",
    "status_of",
    "time_entry_to_canonical",
    "time_entry_to_wire",
    "uninvoiced_to_canonical",
]

SOURCE: Final = "harvest"
LOCKED_APPROVED: Final = "Item Approved and Locked for this Time Period"
LOCKED_SUBMITTED: Final = "Submitted for approval"
LOCKED_INVOICED: Final = "Expense is invoiced."
_CENT: Final = Decimal("0.01")


def status_of(is_closed: bool | None, is_locked: bool | None) -> TimeEntryStatus:
    """Canonical status from Harvest's two flags (see the module docstring)."""
    if is_closed:
        return "approved"
    return "submitted" if is_locked else "draft"


def status_flags(status: TimeEntryStatus) -> tuple[bool, bool, str | None]:
    """`(is_closed, is_locked, locked_reason)` Harvest shows for a canonical status."""
    if status == "approved":
        return True, True, LOCKED_APPROVED
    if status == "submitted":
        return False, True, LOCKED_SUBMITTED
    return False, False, None


def money(amount: Decimal, currency: str) -> Money:
    """Money from a wire number: cents kept as cents (`100.0` -> `100.00`), finer amounts never rounded."""
    cents = amount.quantize(_CENT)
    return Money(amount=cents if cents == amount else amount, currency=currency)


def time_entry_to_canonical(entry: wire.TimeEntry, *, user_email: str, project_code: str,
                            currency: str) -> TimeEntry:
    billable = bool(entry.billable)
    rate = entry.billable_rate
    return TimeEntry(
        id=str(entry.id), source=SOURCE, user_id=str(entry.user.id), user_email=user_email,
        project_code=project_code, date=entry.spent_date, hours=entry.hours, billable=billable,
        status=status_of(entry.is_closed, entry.is_locked), updated_at=entry.updated_at,
        task=entry.task.name if entry.task is not None else None, notes=entry.notes or None,
        billable_rate=money(rate, currency) if rate is not None and billable else None,
        is_billed=bool(entry.is_billed))


def time_entry_to_wire(entry: TimeEntry, *, project_id: int, task_id: int | None = None,
                       user_name: str | None = None, created_at: dt.datetime | None = None) -> dict[str, Any]:
    """The Harvest time entry a canonical one corresponds to (as on the wire: numbers, ISO strings).

    Used to seed fixtures and to check that a mapping survives the round trip; ids the
    canonical object does not carry (project, task) are passed in.
    """
    is_closed, is_locked, reason = status_flags(entry.status)
    stamp = f"{utc_text(entry.updated_at)}Z"
    rate = entry.billable_rate
    return {
        "id": int(entry.id), "spent_date": entry.date.isoformat(),
        "user": {"id": int(entry.user_id), "name": user_name},
        "project": {"id": project_id, "name": None, "code": entry.project_code},
        "task": {"id": task_id, "name": entry.task} if task_id is not None else None,
        "hours": float(entry.hours), "rounded_hours": float(entry.hours), "notes": entry.notes,
        "is_locked": is_locked, "locked_reason": reason, "is_closed": is_closed, "is_billed": entry.is_billed,
        "billable": entry.billable, "billable_rate": float(rate.amount) if rate is not None else None,
        "created_at": f"{utc_text(created_at)}Z" if created_at else stamp,
        "updated_at": stamp,
    }


def expense_to_canonical(expense: wire.Expense, *, user_email: str, project_code: str, currency: str,
                         category: wire.ExpenseCategory | None) -> Expense:
    """The canonical expense; `category` is the account's record of the category the expense names (null when
    the expense names none the account lists — the expense's own `{id, name, unit_price, unit_name}` then speaks)."""
    named = expense.expense_category
    name = (category.name if category is not None else None) or (named.name if named is not None else None) or ""
    unit_price = named.unit_price if named is not None else None
    if unit_price is None and category is not None:
        unit_price = category.unit_price
    unit_name = (named.unit_name if named is not None else None) or (category.unit_name if category else None)
    unit_priced = unit_price is not None or unit_name is not None
    receipt = expense.receipt
    return Expense(
        id=str(expense.id), source=SOURCE, user_id=str(expense.user.id), user_email=user_email,
        project_code=project_code, date=expense.spent_date, category=name,
        amount=money(expense.total_cost if expense.total_cost is not None else Decimal(0), currency),
        billable=bool(expense.billable), status=status_of(expense.is_closed, expense.is_locked),
        updated_at=expense.updated_at, units=expense.units if unit_priced else None,
        unit_price=money(unit_price, currency) if unit_priced and unit_price is not None else None,
        receipt_url=(receipt.url or None) if receipt is not None else None, notes=expense.notes or None,
        approved_at=None, is_billed=bool(expense.is_billed))


def project_to_canonical(project: wire.Project, *, default_currency: str = "USD") -> TimeProject:
    client = project.client
    return TimeProject(
        id=str(project.id), code=project.code or "", name=project.name,
        client_name=(client.name or "") if client is not None else "",
        is_active=bool(project.is_active), is_billable=bool(project.is_billable),
        currency=(client.currency if client is not None and client.currency else default_currency))


def uninvoiced_to_canonical(row: wire.UninvoicedResult, *, project_code: str) -> UninvoicedProject:
    return UninvoicedProject(
        project_code=project_code, project_name=row.project_name or "", currency=row.currency,
        uninvoiced_hours=row.uninvoiced_hours or Decimal(0),
        uninvoiced_amount=money(row.uninvoiced_amount or Decimal(0), row.currency))
