"""Kantata expenses -> the canonical `Expense`, and workspace custom field values -> the contract's `ExpenseTerms`.

Pure functions, no I/O.

**Expenses** (https://developer.kantata.com/tag/Expenses): `date`, `category` (the expense category's
name), `amount_in_cents` in the expense's `currency` (`currency_base_unit` minor units to the unit, so a
JPY amount is not divided by 100), `is_billable`, `is_invoiced`, `notes`, `user_id`, `workspace_id`,
`receipt_id` and `active_submission_id`. Kantata approves expenses through *expense report submissions*
(https://developer.kantata.com/tag/Expense-Report-Submissions), "before they can be added to an
invoice", so an expense's status is its active submission's: approved -> approved, pending ->
submitted, rejected -> rejected, none (never submitted, or its submission cancelled) -> draft; its
`approved_at` is the submission's `resolved_at`. A project may switch approvals off ("Expenses must be
approved before invoicing", the workspace's `require_expense_approvals`): Kantata's `approved` filter then
lists its expenses as approved without a submission, and so do we (no `approved_at`). A Kantata expense has
an amount only, no quantity and unit price: a mileage line is read as its amount (`units` null).
`receipt_url` is the receipt attachment's API address (`/api/v1/attachments/{receipt_id}`, fetched with the
same token); null when no receipt is attached.

**Expense terms**:

Kantata OX has no expense-terms object: what a contract says about expenses lives where
Kantata keeps any project fact it has no attribute for, in account-configured *custom fields*
on the Workspace set (https://developer.kantata.com/tag/Custom-Fields), whose values come with
a workspace through `include=custom_field_values` (the workspace answers
`custom_field_value_ids`, the values sit under the `custom_field_values` top-level key;
https://developer.kantata.com/tag/Custom-Field-Values). A value names its field
(`custom_field_id`, `custom_field_name`), its `type` (the field's `value_type`) and carries
`value` plus a formatted `display_value`.

The fields, matched by name because ids differ from one Kantata account to the next:

- "Billable expense categories" (value_type `multi`) -> billable_categories, the choices' labels;
- "Expense markup %" (`number`) -> markup_percent;
- "Receipt required above" (`currency`) -> receipt_required_above;
- "Expense cap: <category>" (`currency`), one field per capped category -> caps[<category>].

Why these shapes: a multi-choice field keeps the categories to the account's own list (a
typo cannot invent a category), a number field holds a percentage exactly, and a currency
field per capped category is how Kantata's UI lets a project lead read and edit each cap
(a JSON text field would be opaque there).

Value shapes read here: a `number` value is a JSON number (or its string); a `multi` value is
the list of the selected choices' ids, whose labels are `custom_field_choices` records
(https://developer.kantata.com/tag/Custom-Field-Choices); a `currency` value is an integer in
the currency's minor unit. A currency value carries no currency of its own, so it is read in
the workspace's currency (the contract's); a `currency` on the value record, should Kantata
send one, wins.

A workspace without the three required fields (categories, markup, receipt threshold) holds
no terms: `None`, the contract's "no expense is billable", rather than terms with a guessed
markup or threshold that would bill the client wrongly. Caps are optional.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from contracts.common import Money
from contracts.psa import ExpenseTerms
from contracts.time import Expense, TimeEntryStatus
from system_apis.kantata._delivery_mapping import date_of, instant_of
from system_apis.kantata._wire import API_PREFIX, BASE_URL
from system_apis.kantata.mapping import MappingError, from_minor

__all__ = ["CAP_PREFIX", "CATEGORIES_FIELD", "MARKUP_FIELD", "RECEIPT_FIELD", "SUBMISSION_STATUS", "expense_choice_ids",
           "expense_of", "expense_terms_of"]

CATEGORIES_FIELD: Final = "Billable expense categories"
MARKUP_FIELD: Final = "Expense markup %"
RECEIPT_FIELD: Final = "Receipt required above"
CAP_PREFIX: Final = "Expense cap: "

Record = dict[str, Any]

SUBMISSION_STATUS: Final[dict[str, TimeEntryStatus]] = {
    "approved": "approved", "pending": "submitted", "rejected": "rejected", "canceled": "draft"}
"""An expense report submission's `status` -> the expense's canonical status."""

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def expense_of(expense: Record, *, user: Record | None, submission: Record | None, project_code: str,
               workspace: Record | None = None) -> Expense:
    """A Kantata expense with its included user, active submission and workspace as the canonical one (source
    "kantata")."""
    eid = expense.get("id")
    status_name = str(submission.get("status") or "") if submission else ""
    if status_name and status_name not in SUBMISSION_STATUS:
        raise MappingError(f"expense_report_submissions[{submission and submission.get('id')}].status",
                           f"unknown submission status {status_name!r}")
    unapproved_project = workspace is not None and workspace.get("require_expense_approvals") is False
    status = SUBMISSION_STATUS[status_name] if status_name else "approved" if unapproved_project else "draft"
    currency = str(expense.get("currency") or "")
    cents = expense.get("amount_in_cents")
    if len(currency) != 3 or isinstance(cents, bool) or not isinstance(cents, int):
        raise MappingError(f"expenses[{eid}].amount_in_cents", f"no amount in minor units of a currency: "
                                                                f"{cents!r} {currency!r}")
    unit = expense.get("currency_base_unit")
    receipt = expense.get("receipt_id")
    return Expense(
        id=str(eid), source="kantata", user_id=str(expense.get("user_id") or ""),
        user_email=str((user or {}).get("email_address") or ""), project_code=project_code,
        date=date_of(expense.get("date"), f"expenses[{eid}].date"), category=str(expense.get("category") or ""),
        amount=from_minor(cents, currency, int(unit) if unit else None), billable=bool(expense.get("is_billable")),
        status=status, updated_at=instant_of(expense.get("updated_at")) or _EPOCH,
        receipt_url=f"{BASE_URL}{API_PREFIX}/attachments/{receipt}" if receipt else None,
        notes=str(expense.get("notes") or "") or None,
        approved_at=instant_of(submission.get("resolved_at")) if submission and status == "approved" else None,
        is_billed=bool(expense.get("is_invoiced")))


def _is_expense_field(name: str) -> bool:
    return name in (CATEGORIES_FIELD, MARKUP_FIELD, RECEIPT_FIELD) or name.startswith(CAP_PREFIX)


def _name(value: Record) -> str:
    return str(value.get("custom_field_name") or "").strip()


def _ids(raw: object) -> list[str]:
    """A multi value's choice ids; Kantata answers ids as strings or numbers."""
    if raw is None or raw == "":
        return []
    return [str(i) for i in raw] if isinstance(raw, list) else [str(raw)]


def expense_choice_ids(values: Iterable[Record]) -> set[str]:
    """The choice ids the expense terms' multi fields select, so their labels can be fetched in one call."""
    return {i for v in values if _name(v) == CATEGORIES_FIELD for i in _ids(v.get("value"))}


def _number(value: Record) -> Decimal:
    raw = value.get("value")
    try:
        return Decimal(str(raw).strip())
    except InvalidOperation as exc:
        raise MappingError(f"custom_field_values[{value.get('id')}].value",
                           f"{_name(value)!r} is not a number: {raw!r}") from exc


def _money(value: Record, workspace: Record) -> Money:
    raw = value.get("value")
    own = value.get("currency")
    currency = str(own or workspace.get("currency") or "USD")
    unit = workspace.get("currency_base_unit") if not own or own == workspace.get("currency") else None
    if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).strip().lstrip("-").isdigit():
        raise MappingError(f"custom_field_values[{value.get('id')}].value",
                           f"{_name(value)!r} is not an amount in minor units: {raw!r}")
    return from_minor(int(raw), currency, int(unit) if unit else None)


def expense_terms_of(workspace: Record, values: Iterable[Record], choices: Mapping[str, str]) -> ExpenseTerms | None:
    """The workspace's expense terms from its custom field values; `choices` maps choice id -> label.

    Values of other fields are ignored; a value whose `value` is empty counts as not set (Kantata keeps
    a cleared field's value record).
    """
    ours = {_name(v): v for v in values if _is_expense_field(_name(v)) and v.get("value") not in (None, "", [])}
    if not {CATEGORIES_FIELD, MARKUP_FIELD, RECEIPT_FIELD} <= ours.keys():
        return None
    labels: list[str] = []
    for choice_id in _ids(ours[CATEGORIES_FIELD].get("value")):
        if choice_id not in choices:
            raise MappingError(f"custom_field_values[{ours[CATEGORIES_FIELD].get('id')}].value",
                               f"choice {choice_id} of {CATEGORIES_FIELD!r} is unknown")
        labels.append(choices[choice_id])
    caps = {name.removeprefix(CAP_PREFIX).strip(): _money(v, workspace)
            for name, v in sorted(ours.items()) if name.startswith(CAP_PREFIX)}
    return ExpenseTerms(billable_categories=labels, markup_percent=_number(ours[MARKUP_FIELD]),
                        receipt_required_above=_money(ours[RECEIPT_FIELD], workspace), caps=caps)
