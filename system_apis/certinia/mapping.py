"""Certinia PSA records (``pse__`` objects as SOQL returns them) <-> canonical objects. Pure functions, no I/O.

Objects and fields, from Certinia's PSA data dictionary
(https://help.certinia.com/TechnicalReference/2023.3/ProfessionalServicesAutomation/Schema/<Object>.htm)
and object model diagrams (.../ProfessionalServicesAutomation/oms/objectmodel-Projects.htm):

- project ``pse__Proj__c``: Name, pse__Account__c (client), pse__Stage__c, pse__Is_Active__c,
  pse__Is_Billable__c, pse__Billing_Type__c, pse__Start_Date__c, pse__End_Date__c,
  CurrencyIsoCode; its budget is the sum of its approved ``pse__Budget__c`` records, rolled up
  by Certinia into pse__Bookings__c (read-only), so the adapter writes a budget record;
- milestone ``pse__Milestone__c``: pse__Project__c, pse__Target_Date__c, pse__Milestone_Amount__c;
- resource = ``Contact`` with pse__Is_Resource__c, pse__Is_Resource_Active__c, pse__Resource_Role__c,
  pse__Practice__c (lookup to ``pse__Practice__c``), pse__Default_Cost_Rate__c;
- assignment ``pse__Assignment__c``: pse__Project__c, pse__Resource__c, pse__Role__c,
  pse__Bill_Rate__c, pse__Planned_Hours__c, and its dates on pse__Schedule__c (``pse__Schedule__c``);
- rate card ``pse__Rate_Card__c``: one role's rate — pse__Role__c, pse__Suggested_Bill_Rate__c,
  pse__Start_Date__c, pse__End_Date__c, pse__Region__c, CurrencyIsoCode;
- timecard ``pse__Timecard_Header__c``: one resource, one project (assignment), one week —
  pse__Start_Date__c, pse__End_Date__c, daily hours pse__Monday_Hours__c … pse__Sunday_Hours__c,
  pse__Status__c (Saved / Submitted / Approved / Rejected), pse__Billable__c, pse__Billed__c,
  pse__Timecard_Notes__c, pse__Audit_Notes__c (where a decision's comment goes, 255 characters).
  Certinia bills through timecard splits (``pse__Timecard__c``, one per time period a week spans);
  this adapter reads billing state from the header only (not checked against a live org).

Fields psconnect adds to the org (custom, not Certinia's; documented for the org's admin):
``External_Id__c`` (External ID, unique) on pse__Proj__c, pse__Milestone__c, pse__Budget__c,
Contact, pse__Practice__c and pse__Region__c (the legal entity code); ``ERP_Project_Id__c`` and
``Rate_Card_Code__c`` on pse__Proj__c; ``Rate_Card_Code__c`` on pse__Rate_Card__c (Certinia has
no "card of lines": each record is one role's rate, so the canonical card groups the records
sharing a code); ``Billable_Expense_Types__c``, ``Expense_Markup__c`` and ``Receipt_Required_Above__c``
on pse__Proj__c, the contract's expense terms beside Certinia's own expense limits (why and how:
`system_apis.certinia._expense_mapping`, which also maps expenses).

A timecard becomes one canonical time entry per day with hours (id ``{timecard id}-{yyyymmdd}``):
the time contract counts hours by date, and a week's total cannot be priced per period. Status:
Saved -> draft, Submitted -> submitted, Approved -> approved, Rejected -> rejected. A submitted,
approved or rejected timecard is a canonical timesheet submission (pending/approved/rejected).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, Literal

from contracts.billing import RateCard, RateCardLine
from contracts.common import Money
from contracts.psa import ExpenseTerms, PsaMilestone, PsaProject, PsaProjectUpsert, TimesheetSubmission
from contracts.time import TimeEntry, TimeEntryStatus, TimeProject, UninvoicedProject
from contracts.workforce import Assignment, PsaUser, PsaUserUpsert

__all__ = [
    "ASSIGNMENT_FIELDS",
    "DAYS",
    "EXTERNAL_ID_FIELD",
    "MILESTONE_FIELDS",
    "PROJECT_FIELDS",
    "RATE_CARD_FIELDS",
    "RESOURCE_FIELDS",
    "SOURCE",
    "STATUS_OF",
    "TIMECARD_FIELDS",
    "MappingError",
    "assignment_of",
    "budget_fields",
    "day_entries",
    "entry_id",
    "milestone_fields",
    "milestone_key",
    "project_fields",
    "project_of",
    "rate_cards_of",
    "resource_fields",
    "role_key",
    "role_name",
    "submission_of",
    "time_project_of",
    "uninvoiced_of",
    "user_of",
]

SOURCE: Final = "certinia"
EXTERNAL_ID_FIELD: Final = "External_Id__c"
DAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
"""Daily hours fields ``pse__{Day}_Hours__c``, by Python weekday number."""

PROJECT_FIELDS: Final = (
    "Id", "Name", EXTERNAL_ID_FIELD, "pse__Account__c", "pse__Account__r.Name", "pse__Stage__c", "pse__Is_Active__c",
    "pse__Is_Billable__c", "pse__Billing_Type__c", "pse__Start_Date__c", "pse__End_Date__c", "pse__Bookings__c",
    "CurrencyIsoCode", "ERP_Project_Id__c", "Rate_Card_Code__c",
    # the contract's expense terms (read by `_expense_mapping.expense_terms_of`, never written by psconnect)
    "pse__Exclude_from_Billing__c", "Billable_Expense_Types__c", "Expense_Markup__c", "Receipt_Required_Above__c")
MILESTONE_FIELDS: Final = ("Id", "Name", EXTERNAL_ID_FIELD, "pse__Project__c", "pse__Target_Date__c",
                           "pse__Milestone_Amount__c", "CurrencyIsoCode")
RESOURCE_FIELDS: Final = ("Id", "Name", "FirstName", "LastName", "Email", EXTERNAL_ID_FIELD, "pse__Is_Resource__c",
                          "pse__Is_Resource_Active__c", "pse__Resource_Role__c", "pse__Practice__c",
                          "pse__Practice__r.Name", "pse__Default_Cost_Rate__c", "CurrencyIsoCode")
ASSIGNMENT_FIELDS: Final = (
    "Id", "Name", "pse__Project__c", "pse__Project__r.External_Id__c", "pse__Resource__c", "pse__Resource__r.Email",
    "pse__Resource__r.External_Id__c", "pse__Role__c", "pse__Bill_Rate__c", "pse__Planned_Hours__c",
    "pse__Schedule__c", "pse__Schedule__r.pse__Start_Date__c", "pse__Schedule__r.pse__End_Date__c",
    "CurrencyIsoCode")
RATE_CARD_FIELDS: Final = ("Id", "Name", "Rate_Card_Code__c", "pse__Role__c", "pse__Suggested_Bill_Rate__c",
                           "pse__Start_Date__c", "pse__End_Date__c", "pse__Region__c",
                           "pse__Region__r.External_Id__c", "CurrencyIsoCode")
TIMECARD_FIELDS: Final = (
    "Id", "Name", "pse__Project__c", "pse__Project__r.External_Id__c", "pse__Project__r.Name", "pse__Resource__c",
    "pse__Resource__r.Email", "pse__Assignment__c", "pse__Assignment__r.pse__Role__c",
    "pse__Assignment__r.pse__Bill_Rate__c", "pse__Start_Date__c", "pse__End_Date__c",
    *(f"pse__{day}_Hours__c" for day in DAYS), "pse__Total_Hours__c", "pse__Status__c", "pse__Billable__c",
    "pse__Billed__c", "pse__Timecard_Notes__c", "CurrencyIsoCode", "LastModifiedDate")

STATUS_OF: Final[Mapping[str, TimeEntryStatus]] = {
    "Saved": "draft", "Submitted": "submitted", "Approved": "approved", "Rejected": "rejected"}
STATUS_TO: Final = {v: k for k, v in STATUS_OF.items()}
_STAGE_OF: Final[Mapping[str, Literal["not_started", "active", "completed"]]] = {
    "Draft": "not_started", "Planned": "not_started", "In Progress": "active", "Completed": "completed",
    "Closed": "completed", "Canceled": "completed"}
_STAGE_TO: Final = {"not_started": "Planned", "active": "In Progress", "completed": "Completed"}
_BILLING_OF: Final[Mapping[str, Literal["time_and_materials", "fixed_fee", "mixed"]]] = {
    "Time and Materials": "time_and_materials", "Fixed Price": "fixed_fee", "Mixed": "mixed"}
_BILLING_TO: Final = {v: k for k, v in _BILLING_OF.items()}
_SUBMISSION_OF: Final[Mapping[str, Literal["pending", "approved", "rejected"]]] = {
    "Submitted": "pending", "Approved": "approved", "Rejected": "rejected"}
_CENT: Final = Decimal("0.01")


class MappingError(ValueError):
    """A record psconnect cannot represent; `field` is the JSON pointer (canonical) or sObject field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# --- small readers ----------------------------------------------------------------------------------


def related(record: Mapping[str, Any], path: str) -> Any:
    """A parent field by relationship path (``pse__Project__r.Name``) as SOQL nests it; None when unset."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _date(value: Any, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise MappingError(field, f"{field} is not a date: {value!r}") from exc


def _optional_date(value: Any, field: str) -> dt.date | None:
    return None if value in (None, "") else _date(value, field)


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def money(amount: Any, currency: str) -> Money:
    """Money from a wire number: cents kept as cents, finer amounts never rounded."""
    value = _decimal(amount)
    cents = value.quantize(_CENT)
    return Money(amount=cents if cents == value else value, currency=currency)


def instant(value: Any) -> dt.datetime:
    """A Salesforce dateTime (``2026-10-05T18:00:00.000+0000``) as an aware datetime."""
    text = str(value)
    if text.endswith("+0000"):
        text = text[:-5] + "+00:00"
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def role_name(key: str) -> str:
    """The pse__Role__c picklist value of a canonical role key (senior_consultant -> Senior Consultant)."""
    return key.replace("_", " ").title()


def role_key(name: Any) -> str:
    return str(name or "").strip().lower().replace(" ", "_")


# --- projects -----------------------------------------------------------------------------------------


def milestone_key(project_external_id: str, name: str, due: dt.date) -> str:
    """A milestone's External_Id__c: stable for the same project, name and date, so a re-run upserts it."""
    digest = hashlib.sha256(f"{name.strip().casefold()}|{due.isoformat()}".encode()).hexdigest()[:16]
    return f"{project_external_id}:{digest}"


def project_of(record: Mapping[str, Any], milestones: Sequence[Mapping[str, Any]], *,
               default_currency: str = "USD", expense_terms: ExpenseTerms | None = None) -> PsaProject:
    currency = str(record.get("CurrencyIsoCode") or default_currency)
    stage = str(record.get("pse__Stage__c") or "")
    status = _STAGE_OF.get(stage, "active" if record.get("pse__Is_Active__c") else "not_started")
    billing = _BILLING_OF.get(str(record.get("pse__Billing_Type__c") or ""), "time_and_materials")
    return PsaProject(
        id=str(record["Id"]), external_id=str(record.get(EXTERNAL_ID_FIELD) or ""), title=str(record.get("Name") or ""),
        client_name=str(related(record, "pse__Account__r.Name") or ""), status=status,
        budget=money(record.get("pse__Bookings__c"), currency), billing_terms=billing,
        start_date=_optional_date(record.get("pse__Start_Date__c"), "pse__Start_Date__c"),
        due_date=_optional_date(record.get("pse__End_Date__c"), "pse__End_Date__c"),
        milestones=[PsaMilestone(name=str(m.get("Name") or ""),
                                 due_date=_date(m.get("pse__Target_Date__c"), "pse__Target_Date__c"),
                                 amount=money(m["pse__Milestone_Amount__c"], str(m.get("CurrencyIsoCode") or currency))
                                 if m.get("pse__Milestone_Amount__c") is not None else None)
                    for m in sorted(milestones, key=lambda m: (str(m.get("pse__Target_Date__c")), str(m.get("Name"))))],
        erp_project_id=record.get("ERP_Project_Id__c") or None, rate_card_id=record.get("Rate_Card_Code__c") or None,
        expense_terms=expense_terms)


def project_fields(data: PsaProjectUpsert, *, account_id: str | None) -> dict[str, Any]:
    """The pse__Proj__c fields an upsert sets (the budget goes to a pse__Budget__c, see `budget_fields`)."""
    for i, milestone in enumerate(data.milestones):
        if milestone.amount is not None and milestone.amount.currency != data.budget.currency:
            raise MappingError(f"/milestones/{i}/amount/currency",
                               "a milestone is priced in the project's currency in Certinia")
    if data.start_date and data.due_date and data.due_date < data.start_date:
        raise MappingError("/due_date", "the project ends before it starts")
    fields: dict[str, Any] = {
        "Name": data.title[:80], "pse__Billing_Type__c": _BILLING_TO[data.billing_terms],
        "pse__Is_Billable__c": True, "pse__Is_Active__c": True, "pse__Stage__c": _STAGE_TO["active"],
        "pse__Start_Date__c": data.start_date.isoformat() if data.start_date else None,
        "pse__End_Date__c": data.due_date.isoformat() if data.due_date else None,
        "CurrencyIsoCode": data.budget.currency, "ERP_Project_Id__c": data.erp_project_id,
        "Rate_Card_Code__c": data.rate_card_id}
    if account_id is not None:
        fields["pse__Account__c"] = account_id
    return fields


def budget_fields(data: PsaProjectUpsert, project_id: str) -> dict[str, Any]:
    """The project's customer purchase order budget: what Certinia rolls up into pse__Bookings__c."""
    return {"Name": f"{data.title[:60]} budget", "pse__Project__c": project_id,
            "pse__Type__c": "Customer Purchase Order",
            "pse__Status__c": "Approved", "pse__Approved__c": True, "pse__Include_In_Financials__c": True,
            "pse__Amount__c": data.budget.amount, "CurrencyIsoCode": data.budget.currency}


def milestone_fields(milestone: PsaMilestone, project_id: str, currency: str) -> dict[str, Any]:
    return {"Name": milestone.name[:80], "pse__Project__c": project_id,
            "pse__Target_Date__c": milestone.due_date.isoformat(),
            "pse__Milestone_Amount__c": milestone.amount.amount if milestone.amount is not None else None,
            "CurrencyIsoCode": currency}


def time_project_of(record: Mapping[str, Any], *, default_currency: str = "USD") -> TimeProject:
    return TimeProject(id=str(record["Id"]), code=str(record.get(EXTERNAL_ID_FIELD) or ""),
                       name=str(record.get("Name") or ""),
                       client_name=str(related(record, "pse__Account__r.Name") or ""),
                       is_active=bool(record.get("pse__Is_Active__c")),
                       is_billable=bool(record.get("pse__Is_Billable__c")),
                       currency=str(record.get("CurrencyIsoCode") or default_currency))


# --- resources, assignments, rate cards ---------------------------------------------------------------


def resource_fields(data: PsaUserUpsert, *, practice_id: str) -> dict[str, Any]:
    first, _, last = data.name.strip().rpartition(" ")
    return {"FirstName": first or None, "LastName": last or data.name.strip(), "Email": data.email,
            "pse__Is_Resource__c": True, "pse__Is_Resource_Active__c": data.active,
            "pse__Resource_Role__c": role_name(data.role), "pse__Practice__c": practice_id,
            "pse__Default_Cost_Rate__c": data.cost_rate.amount, "CurrencyIsoCode": data.cost_rate.currency}


def user_of(record: Mapping[str, Any], *, external_id: str, practice: str) -> PsaUser:
    currency = str(record.get("CurrencyIsoCode") or "USD")
    return PsaUser(id=str(record["Id"]), external_id=external_id, name=str(record.get("Name") or ""),
                   email=str(record.get("Email") or ""), role=role_key(record.get("pse__Resource_Role__c")),
                   practice=practice, cost_rate=money(record.get("pse__Default_Cost_Rate__c"), currency),
                   active=bool(record.get("pse__Is_Resource_Active__c")))


def assignment_of(record: Mapping[str, Any]) -> Assignment:
    return Assignment(
        id=str(record["Id"]), project_external_id=str(related(record, "pse__Project__r.External_Id__c") or ""),
        worker_email=str(related(record, "pse__Resource__r.Email") or ""), role=role_key(record.get("pse__Role__c")),
        start_date=_date(related(record, "pse__Schedule__r.pse__Start_Date__c"), "pse__Schedule__r.pse__Start_Date__c"),
        end_date=_date(related(record, "pse__Schedule__r.pse__End_Date__c"), "pse__Schedule__r.pse__End_Date__c"),
        planned_hours=_decimal(record.get("pse__Planned_Hours__c")),
        worker_id=related(record, "pse__Resource__r.External_Id__c") or None)


def rate_cards_of(records: Sequence[Mapping[str, Any]]) -> list[RateCard]:
    """Canonical cards from role-rate records, grouped by Rate_Card_Code__c in the order first seen."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        code = str(record.get("Rate_Card_Code__c") or "")
        if code:
            groups.setdefault(code, []).append(record)
    cards = []
    for code, rows in groups.items():
        first = rows[0]
        currency = str(first.get("CurrencyIsoCode") or "USD")
        starts = [_date(r.get("pse__Start_Date__c"), "pse__Start_Date__c") for r in rows if r.get("pse__Start_Date__c")]
        ends = [_optional_date(r.get("pse__End_Date__c"), "pse__End_Date__c") for r in rows]
        cards.append(RateCard(
            id=code, name=str(first.get("Name") or code).rsplit(" - ", 1)[0], currency=currency,
            legal_entity_code=str(related(first, "pse__Region__r.External_Id__c") or ""),
            valid_from=min(starts) if starts else dt.date.min,
            valid_to=None if any(e is None for e in ends) or not ends else max(e for e in ends if e is not None),
            lines=[RateCardLine(role=role_key(r.get("pse__Role__c")),
                                hourly_rate=money(r.get("pse__Suggested_Bill_Rate__c"),
                                                  str(r.get("CurrencyIsoCode") or currency)))
                   for r in sorted(rows, key=lambda r: role_key(r.get("pse__Role__c")))]))
    return cards


# --- timecards --------------------------------------------------------------------------------------------


def entry_id(timecard_id: str, day: dt.date) -> str:
    return f"{timecard_id}-{day:%Y%m%d}"


def day_hours(record: Mapping[str, Any]) -> list[tuple[dt.date, Decimal]]:
    """(date, hours) for each day of the timecard's week that carries hours, in date order."""
    start = _date(record.get("pse__Start_Date__c"), "pse__Start_Date__c")
    end = _optional_date(record.get("pse__End_Date__c"), "pse__End_Date__c") or start + dt.timedelta(days=6)
    out = []
    for offset in range((end - start).days + 1):
        day = start + dt.timedelta(days=offset)
        hours = _decimal(record.get(f"pse__{DAYS[day.weekday()]}_Hours__c"))
        if hours:
            out.append((day, hours))
    return out


def day_entries(record: Mapping[str, Any]) -> list[TimeEntry]:
    status = STATUS_OF.get(str(record.get("pse__Status__c") or ""))
    if status is None:
        raise MappingError("pse__Status__c", f"unknown timecard status {record.get('pse__Status__c')!r}")
    billable = bool(record.get("pse__Billable__c"))
    rate = related(record, "pse__Assignment__r.pse__Bill_Rate__c")
    currency = str(record.get("CurrencyIsoCode") or "USD")
    updated = instant(record.get("LastModifiedDate"))
    timecard_id = str(record["Id"])
    return [TimeEntry(
        id=entry_id(timecard_id, day), source=SOURCE, user_id=str(record.get("pse__Resource__c") or ""),
        user_email=str(related(record, "pse__Resource__r.Email") or ""),
        project_code=str(related(record, "pse__Project__r.External_Id__c") or ""), date=day, hours=hours,
        billable=billable, status=status, updated_at=updated,
        task=role_key(related(record, "pse__Assignment__r.pse__Role__c")) or None,
        notes=record.get("pse__Timecard_Notes__c") or None,
        approved_at=updated if status == "approved" else None,
        billable_rate=money(rate, currency) if billable and rate is not None else None,
        is_billed=bool(record.get("pse__Billed__c"))) for day, hours in day_hours(record)]


def submission_of(record: Mapping[str, Any]) -> TimesheetSubmission:
    status = _SUBMISSION_OF.get(str(record.get("pse__Status__c") or ""))
    if status is None:
        raise MappingError("pse__Status__c", "a saved timecard is not a submission")
    timecard_id = str(record["Id"])
    start = _date(record.get("pse__Start_Date__c"), "pse__Start_Date__c")
    return TimesheetSubmission(
        id=timecard_id, user_email=str(related(record, "pse__Resource__r.Email") or ""),
        project_external_id=str(related(record, "pse__Project__r.External_Id__c") or ""), period_start=start,
        period_end=_optional_date(record.get("pse__End_Date__c"), "pse__End_Date__c") or start + dt.timedelta(days=6),
        status=status, time_entry_ids=[entry_id(timecard_id, day) for day, _ in day_hours(record)],
        decided_at=instant(record.get("LastModifiedDate")) if status != "pending" else None)


def uninvoiced_of(records: Sequence[Mapping[str, Any]], start: dt.date, end: dt.date) -> list[UninvoicedProject]:
    """Approved, billable, unbilled hours dated in [start, end] and their value, per project."""
    rows: dict[str, UninvoicedProject] = {}
    for record in records:
        if record.get("pse__Status__c") != "Approved" or not record.get("pse__Billable__c") \
                or record.get("pse__Billed__c"):
            continue
        code = str(related(record, "pse__Project__r.External_Id__c") or "")
        currency = str(record.get("CurrencyIsoCode") or "USD")
        rate = _decimal(related(record, "pse__Assignment__r.pse__Bill_Rate__c"))
        hours = sum((h for day, h in day_hours(record) if start <= day <= end), Decimal(0))
        if not hours:
            continue
        row = rows.get(code) or UninvoicedProject(
            project_code=code, project_name=str(related(record, "pse__Project__r.Name") or ""), currency=currency,
            uninvoiced_hours=Decimal(0), uninvoiced_amount=Money(amount=Decimal("0.00"), currency=currency))
        rows[code] = UninvoicedProject(
            project_code=code, project_name=row.project_name, currency=currency,
            uninvoiced_hours=row.uninvoiced_hours + hours,
            uninvoiced_amount=money(row.uninvoiced_amount.amount + hours * rate, currency))
    return list(rows.values())
