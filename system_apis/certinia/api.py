"""The PSA and time system APIs on Certinia PSA, through the Salesforce REST API and SOQL.

One adapter class per domain (`CertiniaPsa` implements `PsaSystem`, `CertiniaTime`
`TimeSystem`) over one `CertiniaClient`; `create_systems` builds both on one connection.

Paging: keyset pages (``WHERE Id > :last ORDER BY Id LIMIT n+1``), not Salesforce query
locators, which expire after 15 minutes of inactivity while a canonical cursor must not.
A timecard (one week) yields up to seven day entries, so a time-entry cursor holds the
timecard it stopped in and how many of its days were already returned; a page holds at most
`limit` entries and may hold fewer (a timecard whose hours fall outside the asked dates).

Idempotent writes are external-id upserts (`PATCH /sobjects/{type}/External_Id__c/{value}`):
the project on its external id, its budget on ``{external id}:budget``, each milestone on a
key of project, name and date, a resource (Contact) on the HR worker id, a practice on its
name — so a re-run after a lost answer updates what the first run created.

Expenses (``pse__Expense__c``, with their receipt Files) and each project's contract expense
terms are read by `system_apis.certinia._expense_api`, mapped by `_expense_mapping`.

Timesheet decisions set the timecard's pse__Status__c (Approved / Rejected). An org that routes
timecards through a Salesforce approval process instead must be decided through
``/process/approvals``; psconnect's reference org does not.
https://help.certinia.com/main/2023.3/Content/PSA/Features/Timecards/TimecardApproval.htm
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx
import msgspec
from litestar import Router

from contracts.billing import RateCard
from contracts.common import Page
from contracts.problems import FieldError, ProblemError, invalid_cursor
from contracts.psa import PsaProject, PsaProjectUpsert, TimesheetSubmission
from contracts.time import Expense, TimeEntry, TimeEntryStatus, TimeProject, UninvoicedProject
from contracts.workforce import Assignment, PsaUser, PsaUserUpsert
from foundation.paging import decode_position, encode_position
from foundation.retry import RetryPolicy
from system_apis._internal.force_rest import soql_literal
from system_apis._internal.http import VendorRejected
from system_apis.certinia._expense_api import expense_page, expense_terms, read_expense
from system_apis.certinia._queries import Record, is_id, not_found, select, soql_in, unreadable
from system_apis.certinia.client import RATE_LIMIT, CertiniaClient, session_from
from system_apis.certinia.mapping import (
    ASSIGNMENT_FIELDS,
    EXTERNAL_ID_FIELD,
    MILESTONE_FIELDS,
    PROJECT_FIELDS,
    RATE_CARD_FIELDS,
    RESOURCE_FIELDS,
    STATUS_TO,
    TIMECARD_FIELDS,
    MappingError,
    assignment_of,
    budget_fields,
    day_entries,
    milestone_fields,
    milestone_key,
    project_fields,
    project_of,
    rate_cards_of,
    resource_fields,
    submission_of,
    time_project_of,
    uninvoiced_of,
    user_of,
)
from system_apis.domains.psa import TimesheetDecision, psa_router
from system_apis.domains.time import TimeEntryQuery, time_router
from system_apis.registry import Connection

__all__ = ["CertiniaPsa", "CertiniaTime", "create_router", "create_systems"]

_ENTRY_ID = re.compile(r"^(?P<card>[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?)-(?P<day>\d{8})$")
_SUBMITTED = ("Submitted", "Approved", "Rejected")


class _After(msgspec.Struct, frozen=True):
    after: str


class _EntryCursor(msgspec.Struct, frozen=True, kw_only=True):
    after: str
    skip: int
    status: TimeEntryStatus | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    updated_since: dt.datetime | None = None
    project_code: str | None = None


def _after(cursor: str | None, list_id: str) -> str | None:
    if not cursor:
        return None
    after = decode_position(cursor, _After, list_id).after
    if not is_id(after):
        raise invalid_cursor()
    return after


def _unprocessable(exc: MappingError) -> ProblemError:
    return ProblemError(422, "validation-error", "Validation failed", str(exc),
                        errors=[FieldError(pointer=exc.field, detail=str(exc))], code="unrepresentable_in_certinia")


def _timecard_where(status: TimeEntryStatus | None, start: dt.date | None, end: dt.date | None,
                    updated_since: dt.datetime | None = None, project_code: str | None = None) -> list[str]:
    where = []
    if status is not None:
        where.append(f"pse__Status__c = {soql_literal(STATUS_TO[status])}")
    if start is not None:
        where.append(f"pse__End_Date__c >= {start.isoformat()}")  # a week overlapping the range
    if end is not None:
        where.append(f"pse__Start_Date__c <= {end.isoformat()}")
    if updated_since is not None:
        where.append(f"LastModifiedDate >= {soql_literal(updated_since)}")
    if project_code is not None:
        where.append(f"pse__Project__r.External_Id__c = {soql_literal(project_code)}")
    return where


class _CertiniaBase:
    """What both domain adapters share: the client, SOQL helpers, the time-entry pager."""

    def __init__(self, client: CertiniaClient, *, default_currency: str = "USD") -> None:
        self.client = client
        self.default_currency = default_currency

    async def _all(self, soql: str) -> list[Record]:
        return [record async for record in self.client.query(soql)]

    async def _keyset(self, sobject: str, fields: Sequence[str], where: Sequence[str], limit: int,
                      cursor: str | None, list_id: str) -> tuple[list[Record], str | None]:
        conditions = list(where)
        after = _after(cursor, list_id)
        if after is not None:
            conditions.append(f"Id > {soql_literal(after)}")
        # One extra row tells whether another page exists without a COUNT() round trip.
        records = await self._all(select(sobject, fields, conditions, "Id", limit + 1))
        following = encode_position(_After(str(records[limit - 1]["Id"])), list_id) if len(records) > limit else None
        return records[:limit], following

    async def _time_page(self, query: TimeEntryQuery, limit: int, cursor: str | None,
                         list_id: str) -> Page[TimeEntry]:
        if cursor:
            position = decode_position(cursor, _EntryCursor, list_id)
            if not is_id(position.after) or position.skip < 0:
                raise invalid_cursor()
            query = TimeEntryQuery(status=position.status, start=position.start, end=position.end,
                                   updated_since=position.updated_since, project_code=position.project_code)
            after, skip = position.after, position.skip
        else:
            after, skip = "", 0
        where = _timecard_where(query.status, query.start, query.end, query.updated_since, query.project_code)
        if after:
            where.append(f"Id >= {soql_literal(after)}")
        cards = await self._all(select("pse__Timecard_Header__c", TIMECARD_FIELDS, where, "Id", limit + 1))
        found: list[tuple[str, int, TimeEntry]] = []
        days = 0
        try:
            for card in cards:
                entries = [e for e in day_entries(card) if (query.start is None or e.date >= query.start)
                           and (query.end is None or e.date <= query.end)]
                days = len(entries)
                found.extend((str(card["Id"]), i, e) for i, e in enumerate(entries)
                             if not (card["Id"] == after and i < skip))
        except MappingError as exc:
            raise unreadable(exc, "timecard") from exc
        items = [e for _, _, e in found[:limit]]
        following: _EntryCursor | None = None
        if len(found) > limit:
            card_id, index, _ = found[limit]
            following = _EntryCursor(after=card_id, skip=index)
        elif len(cards) > limit:  # every fetched entry returned, but more timecards wait beyond the last
            following = _EntryCursor(after=str(cards[-1]["Id"]), skip=days)
        if following is None:
            return Page(items=items)
        following = msgspec.structs.replace(following, status=query.status, start=query.start, end=query.end,
                                            updated_since=query.updated_since, project_code=query.project_code)
        return Page(items=items, next_cursor=encode_position(following, list_id))

    async def _timecard(self, timecard_id: str) -> Record:
        if not is_id(timecard_id):
            raise not_found("timecard", timecard_id)
        cards = await self._all(select("pse__Timecard_Header__c", TIMECARD_FIELDS,
                                      [f"Id = {soql_literal(timecard_id)}"], limit=1))
        if not cards:
            raise not_found("timecard", timecard_id)
        return cards[0]


class CertiniaPsa(_CertiniaBase):
    """`PsaSystem` on Certinia PSA. Project ids are pse__Proj__c ids; rate card ids are Rate_Card_Code__c."""

    # --- projects ---------------------------------------------------------------------------------

    async def _projects(self, records: list[Record]) -> list[PsaProject]:
        milestones: dict[str, list[Record]] = {}
        if records:
            ids = [str(r["Id"]) for r in records]
            for m in await self._all(select("pse__Milestone__c", MILESTONE_FIELDS,
                                            [f"pse__Project__c IN {soql_in(ids)}"])):
                milestones.setdefault(str(m["pse__Project__c"]), []).append(m)
        terms = await expense_terms(self.client, records, default_currency=self.default_currency)
        try:
            return [project_of(r, milestones.get(str(r["Id"]), []), default_currency=self.default_currency,
                               expense_terms=terms.get(str(r["Id"]))) for r in records]
        except MappingError as exc:
            raise unreadable(exc, "project") from exc

    async def list_projects(self, external_id: str | None, limit: int, cursor: str | None) -> Page[PsaProject]:
        where = [f"{EXTERNAL_ID_FIELD} = {soql_literal(external_id)}"] if external_id is not None else []
        records, following = await self._keyset("pse__Proj__c", PROJECT_FIELDS, where, limit, cursor, "psa.projects")
        return Page(items=await self._projects(records), next_cursor=following)

    async def get_project(self, project_id: str) -> PsaProject:
        if not is_id(project_id):
            raise not_found("project", project_id)
        records = await self._all(select("pse__Proj__c", PROJECT_FIELDS, [f"Id = {soql_literal(project_id)}"],
                                        limit=1))
        if not records:
            raise not_found("project", project_id)
        return (await self._projects(records))[0]

    async def _account_id(self, name: str) -> str | None:
        """The client Account by name, created (upserted on a key of the name) when the org has none."""
        if not name.strip():
            return None
        found = await self._all(select("Account", ("Id",), [f"Name = {soql_literal(name.strip())}"], "Id", 1))
        if found:
            return str(found[0]["Id"])
        key = "client:" + name.strip().casefold()[:200]
        return (await self.client.upsert("Account", EXTERNAL_ID_FIELD, key, {"Name": name.strip()[:255]})).id

    async def upsert_project(self, external_id: str, data: PsaProjectUpsert) -> tuple[PsaProject, bool]:
        try:
            project_fields(data, account_id=None)  # validate everything before the first write
        except MappingError as exc:
            raise _unprocessable(exc) from exc
        if data.rate_card_id is not None:
            cards = await self._all(select("pse__Rate_Card__c", ("Id",),
                                          [f"Rate_Card_Code__c = {soql_literal(data.rate_card_id)}"], limit=1))
            if not cards:
                raise ProblemError(422, "validation-error", "Validation failed",
                                   f"No rate card {data.rate_card_id!r}.",
                                   errors=[FieldError(pointer="/rate_card_id", detail="unknown rate card")],
                                   code="unknown_rate_card")
        fields = project_fields(data, account_id=await self._account_id(data.client_name))
        result = await self.client.upsert("pse__Proj__c", EXTERNAL_ID_FIELD, external_id, fields)
        await self.client.upsert("pse__Budget__c", EXTERNAL_ID_FIELD, f"{external_id}:budget",
                                 budget_fields(data, result.id))
        for milestone in data.milestones:
            await self.client.upsert("pse__Milestone__c", EXTERNAL_ID_FIELD,
                                     milestone_key(external_id, milestone.name, milestone.due_date),
                                     milestone_fields(milestone, result.id, data.budget.currency))
        return await self.get_project(result.id), result.created

    # --- staffing and rates -----------------------------------------------------------------------

    async def list_assignments(self, project_external_id: str | None, limit: int,
                               cursor: str | None) -> Page[Assignment]:
        where = [f"pse__Project__r.External_Id__c = {soql_literal(project_external_id)}"] \
            if project_external_id is not None else []
        records, following = await self._keyset("pse__Assignment__c", ASSIGNMENT_FIELDS, where, limit, cursor,
                                                "psa.assignments")
        try:
            return Page(items=[assignment_of(r) for r in records], next_cursor=following)
        except MappingError as exc:
            raise unreadable(exc, "assignment") from exc

    async def list_rate_cards(self, legal_entity_code: str | None, limit: int, cursor: str | None) -> Page[RateCard]:
        """Cards are groups of role-rate records, so a page is read by card code, not by record Id."""
        where = ["Rate_Card_Code__c != null"]
        if legal_entity_code is not None:
            where.append(f"pse__Region__r.External_Id__c = {soql_literal(legal_entity_code)}")
        if cursor:
            where.append(f"Rate_Card_Code__c > {soql_literal(decode_position(cursor, _After, 'psa.rate_cards').after)}")
        records = await self._all(select("pse__Rate_Card__c", RATE_CARD_FIELDS, where, "Rate_Card_Code__c"))
        try:
            cards = rate_cards_of(records)
        except MappingError as exc:
            raise unreadable(exc, "rate card") from exc
        following = encode_position(_After(cards[limit - 1].id), "psa.rate_cards") if len(cards) > limit else None
        return Page(items=cards[:limit], next_cursor=following)

    async def get_rate_card(self, rate_card_id: str) -> RateCard:
        records = await self._all(select("pse__Rate_Card__c", RATE_CARD_FIELDS,
                                        [f"Rate_Card_Code__c = {soql_literal(rate_card_id)}"]))
        try:
            cards = rate_cards_of(records)
        except MappingError as exc:
            raise unreadable(exc, "rate card") from exc
        if not cards:
            raise not_found("rate card", rate_card_id)
        return cards[0]

    # --- users ------------------------------------------------------------------------------------

    async def upsert_user(self, external_id: str, data: PsaUserUpsert) -> tuple[PsaUser, bool]:
        practice = await self.client.upsert("pse__Practice__c", EXTERNAL_ID_FIELD, data.practice,
                                            {"Name": data.practice[:80]})
        result = await self.client.upsert("Contact", EXTERNAL_ID_FIELD, external_id,
                                          resource_fields(data, practice_id=practice.id))
        record = await self.client.get_record("Contact", result.id, RESOURCE_FIELDS)
        return user_of(record, external_id=external_id, practice=data.practice), result.created

    # --- time -------------------------------------------------------------------------------------

    async def list_time_entries(self, status: TimeEntryStatus | None, start: dt.date | None, end: dt.date | None,
                                limit: int, cursor: str | None) -> Page[TimeEntry]:
        return await self._time_page(TimeEntryQuery(status=status, start=start, end=end), limit, cursor,
                                     "psa.time_entries")

    async def list_timesheet_submissions(self, status: Literal["pending", "approved", "rejected"] | None, limit: int,
                                         cursor: str | None) -> Page[TimesheetSubmission]:
        wanted = {"pending": "Submitted", "approved": "Approved", "rejected": "Rejected"}
        where = [f"pse__Status__c = {soql_literal(wanted[status])}" if status is not None
                 else f"pse__Status__c IN {soql_in(_SUBMITTED)}"]
        records, following = await self._keyset("pse__Timecard_Header__c", TIMECARD_FIELDS, where, limit, cursor,
                                                "psa.timesheet_submissions")
        try:
            return Page(items=[submission_of(r) for r in records], next_cursor=following)
        except MappingError as exc:
            raise unreadable(exc, "timecard") from exc

    async def decide_timesheet(self, submission_id: str, data: TimesheetDecision) -> TimesheetSubmission:
        card = await self._timecard(submission_id)
        wanted = "Approved" if data.decision == "approved" else "Rejected"
        if card.get("pse__Status__c") == "Submitted":
            fields: dict[str, Any] = {"pse__Status__c": wanted}
            if data.comment:
                fields["pse__Audit_Notes__c"] = data.comment[:255]
            try:
                await self.client.update("pse__Timecard_Header__c", submission_id, fields)
            except VendorRejected as exc:
                if exc.status != 400:
                    raise
                card = await self._timecard(submission_id)
                if card.get("pse__Status__c") == "Submitted":
                    raise  # a refusal of this decision itself, not a race with another approver
            else:
                card = await self._timecard(submission_id)
        if card.get("pse__Status__c") == wanted:
            return submission_of(card)  # decided now, or a replay: the decision already stands
        if card.get("pse__Status__c") == "Saved":
            raise not_found("timesheet submission", submission_id)
        raise ProblemError(409, "conflict", "Already decided",
                           f"Timecard {submission_id} is already {str(card.get('pse__Status__c')).lower()}.",
                           code="already_decided")


class CertiniaTime(_CertiniaBase):
    """`TimeSystem` on Certinia PSA: timecards read as day entries, expenses, projects, uninvoiced approved time."""

    async def list_time_entries(self, query: TimeEntryQuery, limit: int, cursor: str | None) -> Page[TimeEntry]:
        return await self._time_page(query, limit, cursor, "time.time_entries")

    async def get_time_entry(self, entry_id: str) -> TimeEntry:
        match = _ENTRY_ID.match(entry_id)
        if not match:
            raise not_found("time entry", entry_id)
        card = await self._timecard(match["card"])
        try:
            entry = next((e for e in day_entries(card) if e.id == entry_id), None)
        except MappingError as exc:
            raise unreadable(exc, "timecard") from exc
        if entry is None:
            raise not_found("time entry", entry_id)
        return entry

    async def list_expenses(self, query: TimeEntryQuery, limit: int, cursor: str | None) -> Page[Expense]:
        return await expense_page(self.client, query, limit, cursor, default_currency=self.default_currency)

    async def get_expense(self, expense_id: str) -> Expense:
        return await read_expense(self.client, expense_id, default_currency=self.default_currency)

    async def list_projects(self, limit: int, cursor: str | None) -> Page[TimeProject]:
        records, following = await self._keyset("pse__Proj__c", PROJECT_FIELDS, [], limit, cursor, "time.projects")
        return Page(items=[time_project_of(r, default_currency=self.default_currency) for r in records],
                    next_cursor=following)

    async def uninvoiced_report(self, start: dt.date, end: dt.date) -> Page[UninvoicedProject]:
        if end < start or (end - start).days > 365:
            raise ProblemError(422, "validation-error", "Validation failed",
                               "The report covers at most one year, from `from` to `to`.",
                               errors=[FieldError(pointer="to", detail="must be on or after from, within 365 days")],
                               code="invalid_range")
        where = [*_timecard_where("approved", start, end), "pse__Billable__c = true", "pse__Billed__c = false"]
        records = await self._all(select("pse__Timecard_Header__c", TIMECARD_FIELDS, where, "Id"))
        try:
            return Page(items=uninvoiced_of(records, start, end))
        except MappingError as exc:
            raise unreadable(exc, "timecard") from exc


def create_systems(http: httpx.AsyncClient, connection: Connection, *,
                   retry: RetryPolicy | None = None) -> Mapping[str, object]:
    """The psa and time adapters on one Certinia org (`SystemsFactory`); one client, one session."""
    credentials = connection.credentials
    client = CertiniaClient(http, token=credentials.get("token") or "sim-token",
                            session=session_from(http, credentials), retry=retry,
                            budget=connection.budget(RATE_LIMIT))
    return {"psa": CertiniaPsa(client), "time": CertiniaTime(client)}


def create_router(http: httpx.AsyncClient, *, token: str = "sim-token", retry: RetryPolicy | None = None) -> Router:
    """The `/system/psa/v1` and `/system/time/v1` routes served from the Certinia org `http` reaches."""
    client = CertiniaClient(http, token=token, retry=retry)
    return Router(path="/", route_handlers=[psa_router(CertiniaPsa(client)), time_router(CertiniaTime(client))])


