"""Kantata OX delivery records <-> canonical objects: staffing, rate cards, users, time, timesheets. Pure.

Which Kantata object carries which canonical one, and why:

- **Assignment** is a *workspace resource* (a user in a role on a workspace,
  https://developer.kantata.com/kantata/specification/Workspace-Resources) with its
  *workspace allocations* (date ranges and minutes). Kantata's own "assignments" put a
  resource on a task (story) and "participations" carry no role or hours — the resource
  is the staffing record the rate is chosen by.
- **RateCard** is a Kantata rate card (one currency) whose current *rate card version*
  holds *rate card roles* — a bill rate in cents per hour for a role. Its canonical id
  and legal entity are external references on the rate card ("psconnect"/"rate_card",
  "erp"/"legal_entity"): Kantata has no legal-entity field on a rate card.
- **PsaUser** is a Kantata user found by the HR worker id in an external reference
  ("hr"/"worker"). Role title goes to `headline`; the role key, practice and hourly cost
  rate are kept on the user record (see the simulator's note).
- **TimeEntry** is a Kantata time entry (`date_performed`, `time_in_minutes`, `billable`,
  `approved`, `rate_in_cents`); its status comes from `approved` and the latest timesheet
  submission holding it: approved > pending ("submitted") > rejected > none ("draft").
- **TimesheetSubmission** is a Kantata timesheet submission (one user, one workspace, one
  period); a resubmitted rejected timesheet is a new submission, so ids never repeat.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Final, Literal

from contracts.billing import RateCard, RateCardLine
from contracts.common import Money
from contracts.psa import TimesheetSubmission
from contracts.time import TimeEntry, TimeEntryStatus
from contracts.workforce import Assignment, PsaUser, PsaUserUpsert
from system_apis.kantata.mapping import MappingError, from_minor, to_minor

__all__ = [
    "HR_SERVICE_NAME",
    "LEGAL_ENTITY_MODEL",
    "RATE_CARD_MODEL",
    "WORKER_MODEL",
    "assignment_of",
    "date_of",
    "hours_of",
    "instant_of",
    "minutes_of",
    "psa_user_of",
    "rate_card_of",
    "ref_of",
    "role_key",
    "role_name",
    "submission_of",
    "time_entry_of",
    "user_attributes",
]

HR_SERVICE_NAME: Final = "hr"
WORKER_MODEL: Final = "worker"
RATE_CARD_MODEL: Final = "rate_card"
LEGAL_ENTITY_MODEL: Final = "legal_entity"

Record = dict[str, Any]
SubmissionStatus = Literal["pending", "approved", "rejected"]
_HOUR: Final = Decimal(60)


def role_key(name: object) -> str:
    """Canonical role key from a Kantata role name: "Senior Consultant" -> "senior_consultant"."""
    return "_".join(str(name or "").strip().lower().replace("-", " ").split())


def role_name(key: str) -> str:
    """The Kantata role name for a canonical key: "senior_consultant" -> "Senior Consultant"."""
    return key.replace("_", " ").strip().title()


def hours_of(minutes: int | str | None) -> Decimal:
    """Decimal hours (two places) from Kantata's integer `time_in_minutes`."""
    return (Decimal(int(minutes or 0)) / _HOUR).quantize(Decimal("0.01"))


def minutes_of(hours: Decimal, field: str = "hours") -> int:
    """Whole minutes, as Kantata stores time; a fraction of a minute is refused, not rounded."""
    minutes = hours * _HOUR
    if minutes != minutes.to_integral_value():
        raise MappingError(field, f"{hours} hours is not a whole number of minutes")
    return int(minutes)


def date_of(value: object, field: str) -> dt.date:
    """A Kantata date (or the date of a timestamp); a missing one is a `MappingError` on `field`."""
    if not isinstance(value, str) or not value:
        raise MappingError(field, "missing date")
    return dt.date.fromisoformat(value[:10])


def instant_of(value: object) -> dt.datetime | None:
    """A Kantata timestamp (`…Z` or with an offset) as an aware instant; None when absent."""
    if not isinstance(value, str) or not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def ref_of(refs: list[Record], service_name: str, service_model: str) -> str | None:
    """The `service_model_ref` of the first reference from that service and model."""
    return next((str(r["service_model_ref"]) for r in refs
                 if r.get("service_name") == service_name and r.get("service_model") == service_model), None)


def rate_card_of(card: Record, *, refs: list[Record], versions: list[Record],
                 rates: list[tuple[Record, Record | None]], on: dt.date | None = None) -> RateCard:
    """A canonical rate card from the Kantata card, its versions and the roles of the version in force.

    The version in force is the latest whose `effective_date` is not after `on` (today by
    default); it is valid until the next version takes effect (open-ended if none).
    """
    currency = str(card.get("currency") or "USD")
    dated = sorted((v for v in versions if v.get("effective_date")), key=lambda v: str(v["effective_date"]))
    if not dated:
        raise MappingError("rate_card_versions", f"rate card {card.get('id')} has no dated version")
    day = (on or dt.date.today()).isoformat()
    current = next((v for v in reversed(dated) if str(v["effective_date"])[:10] <= day), dated[0])
    later = [v for v in dated if str(v["effective_date"]) > str(current["effective_date"])]
    valid_to = date_of(later[0]["effective_date"], "effective_date") - dt.timedelta(days=1) if later else None
    lines = sorted((RateCardLine(role=role_key(role.get("name")), hourly_rate=from_minor(int(rate["rate"]), currency))
                    for rate, role in rates
                    if role is not None and str(rate.get("rate_card_version_id")) == str(current["id"])),
                   key=lambda line: line.role)
    return RateCard(id=ref_of(refs, "psconnect", RATE_CARD_MODEL) or str(card["id"]),
                    name=str(card.get("title") or ""),
                    legal_entity_code=ref_of(refs, "erp", LEGAL_ENTITY_MODEL) or "",
                    currency=currency, valid_from=date_of(current["effective_date"], "effective_date"),
                    valid_to=valid_to, lines=lines)


def assignment_of(resource: Record, *, user: Record | None, role: Record | None, allocations: list[Record],
                  project_external_id: str, worker_id: str | None) -> Assignment:
    """A named workspace resource and its allocations as one assignment (dates span the allocations)."""
    if not allocations:
        raise MappingError("workspace_allocations", f"resource {resource.get('id')} has no allocation")
    starts = [date_of(a.get("start_date"), "start_date") for a in allocations]
    ends = [date_of(a.get("end_date"), "end_date") for a in allocations]
    return Assignment(id=str(resource["id"]), project_external_id=project_external_id,
                      worker_email=str((user or {}).get("email_address") or ""),
                      role=role_key((role or {}).get("name") or resource.get("label")),
                      start_date=min(starts), end_date=max(ends),
                      planned_hours=hours_of(sum(int(a.get("minutes") or 0) for a in allocations)),
                      worker_id=worker_id)


def user_attributes(data: PsaUserUpsert) -> Record:
    """User attributes for create/update; the HR external reference is added by the caller on create."""
    return {"full_name": data.name, "email_address": data.email, "headline": role_name(data.role),
            "role_key": data.role, "practice": data.practice, "disabled": not data.active,
            "cost_rate_in_cents": to_minor(data.cost_rate, "cost_rate.amount"),
            "cost_rate_currency": data.cost_rate.currency}


def psa_user_of(user: Record, *, external_id: str) -> PsaUser:
    currency = str(user.get("cost_rate_currency") or "USD")
    cents = user.get("cost_rate_in_cents")
    return PsaUser(id=str(user["id"]), external_id=external_id, name=str(user.get("full_name") or ""),
                   email=str(user.get("email_address") or ""),
                   role=str(user.get("role_key") or role_key(user.get("headline"))),
                   practice=str(user.get("practice") or ""),
                   cost_rate=from_minor(int(cents), currency) if cents is not None else Money(
                       amount=Decimal("0.00"), currency=currency),
                   active=not user.get("disabled"))


def _entry_status(entry: Record, submission: Record | None) -> TimeEntryStatus:
    if entry.get("approved"):
        return "approved"
    state = str((submission or {}).get("status") or "")
    return {"pending": "submitted", "rejected": "rejected"}.get(state, "draft")  # type: ignore[return-value]


def time_entry_of(entry: Record, *, user: Record | None, workspace: Record | None, story: Record | None,
                  submission: Record | None, project_code: str) -> TimeEntry:
    """A Kantata time entry as the canonical one (source "kantata")."""
    currency = str((workspace or {}).get("currency") or entry.get("currency") or "USD")
    cents = entry.get("rate_in_cents")
    updated = instant_of(entry.get("updated_at")) or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return TimeEntry(
        id=str(entry["id"]), source="kantata", user_id=str(entry.get("user_id") or ""),
        user_email=str((user or {}).get("email_address") or ""), project_code=project_code,
        date=date_of(entry.get("date_performed"), "date_performed"), hours=hours_of(entry.get("time_in_minutes")),
        billable=bool(entry.get("billable")), status=_entry_status(entry, submission), updated_at=updated,
        task=str(story["title"]) if story and story.get("title") else None, notes=entry.get("notes") or None,
        approved_at=instant_of(submission.get("resolved_at"))
        if entry.get("approved") and submission and submission.get("status") == "approved" else None,
        billable_rate=from_minor(int(cents), currency) if cents is not None and entry.get("billable") else None,
        is_billed=bool(entry.get("invoice_id")))


def submission_of(submission: Record, *, user: Record | None, project_external_id: str) -> TimesheetSubmission:
    status = str(submission.get("status") or "pending")
    if status not in ("pending", "approved", "rejected"):
        raise MappingError("status", f"unknown submission status {status!r}")
    return TimesheetSubmission(
        id=str(submission["id"]), user_email=str((user or {}).get("email_address") or ""),
        project_external_id=project_external_id,
        period_start=date_of(submission.get("start_date"), "start_date"),
        period_end=date_of(submission.get("end_date"), "end_date"),
        status=status,  # type: ignore[arg-type]
        time_entry_ids=[str(i) for i in submission.get("time_entry_ids") or []],
        decided_at=instant_of(submission.get("resolved_at")) if status != "pending" else None)
