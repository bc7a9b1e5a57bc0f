"""The PSA system API's delivery half on Kantata: staffing, rate cards, users, time, timesheet decisions.

Cross-system keys are Kantata external references, looked up in one call per page
(`subject_id=1,2,3`), never per record: a workspace's "psconnect"/"project" reference is
the project code (PRJ-...), a user's "hr"/"worker" reference the HR worker id, a rate
card's "psconnect"/"rate_card" reference its canonical id (RC-US01-2026).

User upsert follows the project upsert's crash-safe design (see `api.py`): the HR
reference is created nested in the same POST as the user, and Kantata refuses a second
user with the same email, so a re-run after a lost answer finds and updates the user.
A timesheet decision replayed after a lost answer finds the submission already decided
the same way and answers it unchanged; the opposite decision is a 409 conflict.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from typing import Any, Literal

import msgspec

from contracts.billing import RateCard
from contracts.common import Page
from contracts.problems import FieldError, ProblemError, invalid_cursor
from contracts.psa import TimesheetSubmission
from contracts.time import TimeEntry, TimeEntryStatus
from contracts.workforce import Assignment, PsaUser, PsaUserUpsert
from foundation.paging import decode_position, encode_position
from system_apis._internal.http import VendorRejected
from system_apis.domains.psa import TimesheetDecision
from system_apis.kantata._delivery_mapping import (
    HR_SERVICE_NAME,
    LEGAL_ENTITY_MODEL,
    RATE_CARD_MODEL,
    WORKER_MODEL,
    assignment_of,
    psa_user_of,
    rate_card_of,
    submission_of,
    time_entry_of,
    user_attributes,
)
from system_apis.kantata.client import VENDOR, KantataClient, KantataPage
from system_apis.kantata.mapping import ERP_SERVICE_NAME, SERVICE_MODEL, SERVICE_NAME, MappingError

__all__ = ["Cursor", "KantataDelivery", "decode_cursor", "not_found", "project_codes", "references_of", "subject_of",
           "time_entries_of", "unprocessable", "unreadable", "workspace_of"]

Record = dict[str, Any]


class Cursor(msgspec.Struct, frozen=True):
    page: int
    per_page: int


def decode_cursor(value: str | None, limit: int, collection: str) -> Cursor:
    if not value:
        return Cursor(page=1, per_page=limit)
    cursor = decode_position(value, Cursor, f"psa.{collection}")
    if cursor.page < 1 or not 1 <= cursor.per_page <= 200:
        raise invalid_cursor("The cursor is out of range.")
    return cursor


def _next(position: Cursor, page: KantataPage, collection: str) -> str | None:
    following = Cursor(page=position.page + 1, per_page=position.per_page)
    return encode_position(following, f"psa.{collection}") if page.has_next else None


def not_found(what: str, key: str) -> ProblemError:
    return ProblemError(404, "not-found", "Not found", f"No Kantata {what} {key!r}.", code="not_found")


def unprocessable(exc: MappingError) -> ProblemError:
    return ProblemError(422, "validation-error", "Validation failed", str(exc),
                        errors=[FieldError(pointer=exc.field, detail=str(exc))], code="unrepresentable_in_kantata")


def unreadable(exc: MappingError, what: str) -> VendorRejected:
    return VendorRejected(VENDOR, f"unreadable {what} record: {exc}", status=502)


def time_entries_of(page: KantataPage, records: list[Record], codes: dict[str, str]) -> list[TimeEntry]:
    """`records` of a time-entry page with the associations the page included; `codes`: workspace -> project code."""
    pools = {k: page.included.get(k, {}) for k in ("users", "workspaces", "stories", "timesheet_submissions")}
    try:
        return [time_entry_of(e, user=pools["users"].get(str(e.get("user_id"))),
                              workspace=pools["workspaces"].get(str(e.get("workspace_id"))),
                              story=pools["stories"].get(str(e.get("story_id"))),
                              submission=pools["timesheet_submissions"].get(str(e.get("timesheet_submission_id"))),
                              project_code=codes.get(str(e.get("workspace_id")), ""))
                for e in records]
    except MappingError as exc:
        raise unreadable(exc, "time entry") from exc


async def subject_of(client: KantataClient, subject_type: str, service_name: str, model: str, ref: str) -> str | None:
    """The oldest Kantata record carrying that reference (a duplicate could only be a later mistake)."""
    refs = await client.find_external_references(subject_type=subject_type, service_name=service_name,
                                                 service_model=model, service_model_ref=ref)
    ids = sorted({str(r["subject_id"]) for r in refs}, key=int)
    return ids[0] if ids else None


async def references_of(client: KantataClient, subject_type: str, service_name: str, model: str,
                        ids: set[str]) -> dict[str, str]:
    """subject id -> reference, for a whole page in one call."""
    refs = await client.find_external_references(subject_type=subject_type, service_name=service_name,
                                                 service_model=model, subject_id=sorted(ids))
    return {str(r["subject_id"]): str(r["service_model_ref"]) for r in refs}


async def workspace_of(client: KantataClient, project_code: str) -> str | None:
    """The workspace carrying this project code (PRJ-…) in its "psconnect"/"project" reference."""
    return await subject_of(client, "Workspace", SERVICE_NAME, SERVICE_MODEL, project_code)


async def project_codes(client: KantataClient, workspace_ids: set[str]) -> dict[str, str]:
    """Workspace id -> the project code (PRJ-…) its "psconnect"/"project" reference carries."""
    return await references_of(client, "Workspace", SERVICE_NAME, SERVICE_MODEL, workspace_ids)


class KantataDelivery:
    """Mixin for `KantataPsa`: the PSA additions of issue 3."""

    client: KantataClient
    _locks: defaultdict[str, asyncio.Lock]

    async def rate_card_codes(self, rate_card_ids: set[str]) -> dict[str, str]:
        """Kantata rate card id -> canonical rate card id."""
        return await references_of(self.client, "RateCard", SERVICE_NAME, RATE_CARD_MODEL,
                                   {i for i in rate_card_ids if i})

    async def rate_card_kantata_id(self, rate_card_id: str) -> str | None:
        if rate_card_id.isdigit():
            return rate_card_id
        return await subject_of(self.client, "RateCard", SERVICE_NAME, RATE_CARD_MODEL, rate_card_id)

    # --- staffing -----------------------------------------------------------------------------------

    async def list_assignments(self, project_external_id: str | None, limit: int,
                               cursor: str | None) -> Page[Assignment]:
        position = decode_cursor(cursor, limit, "assignments")
        workspace_ids: list[str] | None = None
        if project_external_id is not None:
            found = await workspace_of(self.client, project_external_id)
            if found is None:
                return Page(items=[])
            workspace_ids = [found]
        page = await self.client.list_workspace_resources(page=position.page, per_page=position.per_page,
                                                          workspace_ids=workspace_ids)
        named = [r for r in page.records if r.get("user_id")]  # unnamed resources are open roles, not staffing
        allocations: dict[str, list[Record]] = defaultdict(list)
        if named:
            async for allocation in self.client.iter_workspace_allocations([str(r["id"]) for r in named]):
                allocations[str(allocation["resource_id"])].append(allocation)
        codes = await project_codes(self.client, {str(r["workspace_id"]) for r in named})
        workers = await references_of(self.client, "User", HR_SERVICE_NAME, WORKER_MODEL,
                                      {str(r["user_id"]) for r in named})
        users, roles = page.included.get("users", {}), page.included.get("roles", {})
        try:
            items = [assignment_of(r, user=users.get(str(r["user_id"])), role=roles.get(str(r.get("role_id"))),
                                   allocations=allocations[str(r["id"])],
                                   project_external_id=codes.get(str(r["workspace_id"]), ""),
                                   worker_id=workers.get(str(r["user_id"])))
                     for r in named if allocations[str(r["id"])]]  # no allocation yet: not staffed in time
        except MappingError as exc:
            raise unreadable(exc, "workspace resource") from exc
        return Page(items=items, next_cursor=_next(position, page, "assignments"))

    # --- rate cards ---------------------------------------------------------------------------------

    async def _rate_cards(self, page: KantataPage) -> list[RateCard]:
        ids = [str(c["id"]) for c in page.records]
        versions: dict[str, list[Record]] = defaultdict(list)
        if ids:
            async for version in self.client.iter_rate_card_versions(ids):
                versions[str(version["rate_card_id"])].append(version)
        rates = [pair async for pair in self.client.iter_rate_card_roles(
            [str(v["id"]) for vs in versions.values() for v in vs])] if versions else []
        try:
            return [rate_card_of(c, refs=page.associated(c, "external_references", "external_reference_ids"),
                                 versions=versions[str(c["id"])], rates=rates) for c in page.records]
        except MappingError as exc:
            raise unreadable(exc, "rate card") from exc

    async def list_rate_cards(self, legal_entity_code: str | None, limit: int, cursor: str | None) -> Page[RateCard]:
        position = decode_cursor(cursor, limit, "rate_cards")
        only: list[str] | None = None
        if legal_entity_code is not None:
            refs = await self.client.find_external_references(
                subject_type="RateCard", service_name=ERP_SERVICE_NAME, service_model=LEGAL_ENTITY_MODEL,
                service_model_ref=legal_entity_code)
            only = sorted({str(r["subject_id"]) for r in refs}, key=int)
            if not only:
                return Page(items=[])
        page = await self.client.list_rate_cards(page=position.page, per_page=position.per_page, only=only,
                                                 include=["external_references"])
        return Page(items=await self._rate_cards(page), next_cursor=_next(position, page, "rate_cards"))

    async def get_rate_card(self, rate_card_id: str) -> RateCard:
        kantata_id = await self.rate_card_kantata_id(rate_card_id)
        if kantata_id is None:
            raise not_found("rate card", rate_card_id)
        page = await self.client.list_rate_cards(only=[kantata_id], include=["external_references"])
        if not page.records:
            raise not_found("rate card", rate_card_id)
        return (await self._rate_cards(page))[0]

    # --- users ----------------------------------------------------------------------------------------

    async def upsert_user(self, external_id: str, data: PsaUserUpsert) -> tuple[PsaUser, bool]:
        try:
            attributes = user_attributes(data)
        except MappingError as exc:
            raise unprocessable(exc) from exc
        async with self._locks[f"user:{external_id}"]:
            try:
                user_id = await subject_of(self.client, "User", HR_SERVICE_NAME, WORKER_MODEL, external_id)
                if user_id is None:
                    attributes["external_reference"] = {"service_name": HR_SERVICE_NAME, "service_model": WORKER_MODEL,
                                                        "service_model_ref": external_id}
                    record = await self.client.create_user(attributes)
                else:
                    record = await self.client.update_user(user_id, attributes)
            except VendorRejected as exc:
                if "already been taken" not in str(exc):
                    raise
                # Another worker holds this email: the state of the PSA, not a malformed request.
                raise ProblemError(409, "conflict", "Email already in use",
                                   f"Another PSA user already has the email {data.email!r}.",
                                   errors=[FieldError(pointer="/email", detail="already taken")],
                                   code="email_taken") from exc
        return psa_user_of(record, external_id=external_id), user_id is None

    # --- time -----------------------------------------------------------------------------------------

    async def list_time_entries(self, status: TimeEntryStatus | None, start: dt.date | None, end: dt.date | None,
                                limit: int, cursor: str | None) -> Page[TimeEntry]:
        """Approved time is filtered by Kantata; other states are picked from each page here (Kantata's
        `approved` filter cannot be negated), so such pages may hold fewer than `limit` entries."""
        position = decode_cursor(cursor, limit, "time_entries")
        page = await self.client.list_time_entries(page=position.page, per_page=position.per_page,
                                                   approved=status == "approved", start=start, end=end)
        codes = await project_codes(self.client, {str(e["workspace_id"]) for e in page.records})
        entries = time_entries_of(page, page.records, codes)
        return Page(items=[e for e in entries if status is None or e.status == status],
                    next_cursor=_next(position, page, "time_entries"))

    async def get_time_entry(self, entry_id: str) -> TimeEntry:
        if not entry_id.isdigit():
            raise not_found("time entry", entry_id)
        page = await self.client.get_time_entry(entry_id)
        codes = await project_codes(self.client, {str(page.records[0]["workspace_id"])})
        return time_entries_of(page, page.records, codes)[0]

    # --- timesheet submissions -------------------------------------------------------------------------

    async def _submissions(self, page: KantataPage) -> list[TimesheetSubmission]:
        codes = await project_codes(self.client, {str(s["workspace_id"]) for s in page.records})
        users = page.included.get("users", {})
        try:
            return [submission_of(s, user=users.get(str(s.get("user_id"))),
                                  project_external_id=codes.get(str(s["workspace_id"]), ""))
                    for s in page.records]
        except MappingError as exc:
            raise unreadable(exc, "timesheet submission") from exc

    async def list_timesheet_submissions(self, status: Literal["pending", "approved", "rejected"] | None, limit: int,
                                         cursor: str | None) -> Page[TimesheetSubmission]:
        position = decode_cursor(cursor, limit, "timesheet_submissions")
        page = await self.client.list_timesheet_submissions(page=position.page, per_page=position.per_page,
                                                            status=status)
        return Page(items=await self._submissions(page), next_cursor=_next(position, page, "timesheet_submissions"))

    async def _submission(self, submission_id: str) -> TimesheetSubmission:
        return (await self._submissions(await self.client.get_timesheet_submission(submission_id)))[0]

    async def decide_timesheet(self, submission_id: str, data: TimesheetDecision) -> TimesheetSubmission:
        if not submission_id.isdigit():
            raise not_found("timesheet submission", submission_id)
        async with self._locks[f"submission:{submission_id}"]:
            current = await self._submission(submission_id)
            if current.status == "pending":
                action = "approve" if data.decision == "approved" else "reject"
                try:
                    page = await self.client.decide_timesheet_submission(submission_id, action, data.comment)
                    return (await self._submissions(page))[0]
                except VendorRejected as exc:
                    if exc.status != 422:
                        raise
                    current = await self._submission(submission_id)  # decided meanwhile elsewhere
            if current.status == data.decision:
                return current  # a replay: the decision already stands
            raise ProblemError(409, "conflict", "Already decided",
                               f"Timesheet submission {submission_id} was already {current.status}.",
                               code="already_decided")
