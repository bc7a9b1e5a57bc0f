"""Summarised time posting on Xero (see `_summary`): post a batch once, answer per line, read back per line."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any

from contracts.billing import (
    PostedTime,
    PostedTimeTotal,
    TimePostingBatch,
    TimePostingJob,
    TimePostingResult,
)
from contracts.common import Money, Page
from contracts.erp import ErpRefusalReason
from foundation.periods import month_of
from system_apis._internal.http import VendorRejected
from system_apis.posted_totals import summed_listing
from system_apis.xero._lookups import XeroLookups, locked, not_found, vendor_data_invalid
from system_apis.xero._summary import (
    DESCRIPTION_PREFIX,
    SummaryLine,
    group_key,
    minutes,
    summary_key,
)
from system_apis.xero.client import PROJECTS, idempotency_key
from system_apis.xero.mapping import (
    MappingError,
    xero_date,
)

__all__ = ["XeroPosting"]


class XeroPosting(XeroLookups):
    """Time posting and posted time; mixed into `XeroErp`."""

    # ------------------------------------------------------------------ time posting

    async def post_time(self, batch: TimePostingBatch) -> TimePostingJob:
        seen = self.summaries.batch(self.connection, batch.batch_key)
        if not seen or any(ln.time_entry_id is None and ln.error is None for ln in seen):
            await self._post(batch, replay=bool(seen))
        result = await self.get_time_posting(batch.batch_key)
        return TimePostingJob(batch_key=batch.batch_key, job_id=batch.batch_key, status=result.status)

    async def _post(self, batch: TimePostingBatch, *, replay: bool) -> None:
        rates = {ln.line_key: ln.rate for ln in batch.lines}
        lines = [SummaryLine(batch_key=batch.batch_key, line_key=ln.line_key,
                             summary_key=summary_key(batch.batch_key, ln), group_key=group_key(ln),
                             project_external_id=ln.project_external_id,
                             employee_external_id=ln.employee_external_id, date=ln.date, hours=ln.hours,
                             amount=str(ln.amount.amount), currency=ln.amount.currency, billable=ln.billable)
                 for ln in batch.lines]
        self.summaries.record(self.connection, lines)  # the composition, before anything reaches Xero
        lines = self.summaries.batch(self.connection, batch.batch_key)
        lock = await self._lock_date()
        refused: dict[str, tuple[str, ErpRefusalReason]] = {}
        projects: dict[str, dict[str, Any] | None] = {}
        for line in lines:
            if line.time_entry_id is not None or line.error is not None:
                continue
            if line.project_external_id not in projects:
                projects[line.project_external_id] = await self._project_record(line.project_external_id)
            project = projects[line.project_external_id]
            if minutes(line.hours) is None:
                refused[line.line_key] = (f"{line.hours} h is not a whole number of minutes", "validation")
            elif lock is not None and line.date <= lock:
                refused[line.line_key] = (f"the period is locked up to {lock}", "period_closed")
            elif project is None:
                refused[line.line_key] = (f"Xero has no project {line.project_external_id!r}", "validation")
            elif project.get("status") == "CLOSED":
                refused[line.line_key] = (f"the project {line.project_external_id} is closed", "project_inactive")
        for (error, refusal), keys in _by_reason(refused).items():
            self.summaries.failed(self.connection, batch.batch_key, keys, error, refusal)
        groups: dict[str, list[SummaryLine]] = {}
        for line in lines:
            if line.time_entry_id is None and line.error is None and line.line_key not in refused:
                groups.setdefault(line.summary_key, []).append(line)
        for key, members in groups.items():
            project = projects[members[0].project_external_id]
            assert project is not None
            await self._post_summary(batch.batch_key, key, members, project, rates, replay=replay)

    async def _post_summary(self, batch_key: str, key: str, members: list[SummaryLine], project: dict[str, Any],
                            rates: dict[str, Money], *, replay: bool) -> None:
        project_id = str(project["projectId"])
        total = sum(minutes(m.hours) or 0 for m in members)
        keys = [m.line_key for m in members]
        if total <= 0:
            await self._fold(batch_key, key, members, project_id, total)
            return
        if replay:  # a crash after Xero took the entry, before we recorded it: find it by its description
            entry_id = await self._find_entry(project_id, key)
            if entry_id is not None:
                self.summaries.posted(self.connection, key, entry_id)
                return
        first = members[0]
        rate = rates.get(first.line_key) or Money(amount=Decimal(0), currency=first.currency)
        body = {"userId": await self._user(), "taskId": await self._rate_task(project_id, first, rate),
                "dateUtc": f"{max(m.date for m in members).isoformat()}T00:00:00Z", "duration": total,
                "description": f"{DESCRIPTION_PREFIX}{key} {first.employee_external_id} ({len(members)} lines)"}
        try:
            entry = await self.client.request("POST", f"{PROJECTS}/Projects/{project_id}/Time", json=body,
                                              key=idempotency_key("time", self.client.tenant, key))
        except VendorRejected as exc:
            reason: ErpRefusalReason = "period_closed" if locked(exc) else "rejected"
            self.summaries.failed(self.connection, batch_key, keys, str(exc), reason)
            return
        self.summaries.posted(self.connection, key, str(entry["timeEntryId"]))

    async def _fold(self, batch_key: str, key: str, members: list[SummaryLine], project_id: str, total: int) -> None:
        """Reversals: add the summary's (negative) minutes to an earlier entry of its group that can take them."""
        keys = [m.line_key for m in members]
        held = self.summaries.entry_lines(self.connection, members[0].group_key)
        for entry_id, posted in sorted(held.items()):
            theirs = [p for p in posted if p.summary_key != key]
            duration = sum(minutes(p.hours) or 0 for p in theirs) + total
            if duration < 1:
                continue
            entry = await self.client.find(f"{PROJECTS}/Projects/{project_id}/Time/{entry_id}")
            if not entry:
                continue
            body = {"userId": entry["userId"], "taskId": entry["taskId"], "dateUtc": entry["dateUtc"],
                    "duration": duration, "description": entry.get("description") or ""}
            try:
                await self.client.request("PUT", f"{PROJECTS}/Projects/{project_id}/Time/{entry_id}", json=body,
                                          key=idempotency_key("fold", self.client.tenant, key, str(duration)))
            except VendorRejected as exc:  # e.g. the entry is invoiced or locked in Xero
                self.summaries.failed(self.connection, batch_key, keys, str(exc), "rejected")
                return
            self.summaries.posted(self.connection, key, entry_id)
            return
        self.summaries.failed(self.connection, batch_key, keys,
                              f"the lines add up to {total} minutes and no earlier entry of theirs can take them: "
                              "Xero holds time of at least one minute", "validation")

    async def _find_entry(self, project_id: str, key: str) -> str | None:
        async for page in self.client.projects_pages(f"/Projects/{project_id}/Time"):
            for entry in page:
                if str(entry.get("description") or "").startswith(f"{DESCRIPTION_PREFIX}{key} "):
                    return str(entry["timeEntryId"])
        return None

    async def get_time_posting(self, batch_key: str) -> TimePostingResult:
        lines = self.summaries.batch(self.connection, batch_key)
        if not lines:
            raise not_found("time posting with batch key", batch_key)
        posted = {ln.line_key: ln.time_entry_id for ln in lines if ln.time_entry_id is not None}
        failed = {ln.line_key: ln.error for ln in lines if ln.error is not None and ln.time_entry_id is None}
        refusals: dict[str, ErpRefusalReason] = {
            ln.line_key: ln.refusal for ln in lines  # type: ignore[misc]
            if ln.error is not None and ln.time_entry_id is None and ln.refusal is not None}
        done = len(posted) + len(failed) == len(lines)
        status = ("failed" if not posted else "complete") if done else "pending"
        return TimePostingResult(batch_key=batch_key, status=status, posted=posted,  # type: ignore[arg-type]
                                 failed=failed, refusals=refusals)

    async def list_posted_time(self, project_external_id: str | None, date_from: dt.date | None,
                               date_to: dt.date | None, limit: int, cursor: str | None) -> Page[PostedTime]:
        q = hashlib.sha256(f"{project_external_id}|{date_from}|{date_to}".encode()).hexdigest()[:24]

        async def read() -> list[PostedTime]:
            if project_external_id is not None:
                record = await self._project_record(project_external_id)
                projects = {project_external_id: record} if record is not None else {}
            else:
                projects = await self._projects(fresh=True)
            items: list[PostedTime] = []
            for external_id, found in sorted(projects.items()):
                items += await self._posted(external_id, found, date_from, date_to)
            items.sort(key=lambda p: (p.date, p.line_key))
            return items

        return await self.listings.page("erp.xero.posted", q, limit, cursor, read)

    async def list_posted_time_totals(self, project_external_id: str | None, date_from: dt.date | None,
                                      date_to: dt.date | None, limit: int,
                                      cursor: str | None) -> Page[PostedTimeTotal]:
        """Summed here: the API has no aggregate of posted time."""
        return await summed_listing(self.list_posted_time, project_external_id, date_from, date_to, limit, cursor,
                                    "erp.xero.posted_totals")

    async def _posted(self, external_id: str, record: dict[str, Any], date_from: dt.date | None,
                      date_to: dt.date | None) -> list[PostedTime]:
        """A project's time as Xero holds it, each summary expanded into the lines it was made of."""
        project_id = str(record["projectId"])
        params: dict[str, str | int] = {}
        if date_from is not None:  # a summary is dated at its last line, within its month
            params["dateAfterUtc"] = f"{date_from.replace(day=1).isoformat()}T00:00:00Z"
        if date_to is not None:
            params["dateBeforeUtc"] = f"{month_of(date_to)[1].isoformat()}T23:59:59Z"
        entries = [e async for page in self.client.projects_pages(f"/Projects/{project_id}/Time", params)
                   for e in page]
        ours = {str(e["timeEntryId"]) for e in entries
                if str(e.get("description") or "").startswith(DESCRIPTION_PREFIX)}
        compositions = self.summaries.by_entry(self.connection, ours)
        tasks: dict[str, dict[str, Any]] | None = None
        out: list[PostedTime] = []
        for entry in entries:
            entry_id = str(entry["timeEntryId"])
            if entry_id in ours:
                members = compositions.get(entry_id, [])
                total = sum(minutes(m.hours) or 0 for m in members)
                if total != int(entry.get("duration") or 0):
                    raise vendor_data_invalid(MappingError(
                        f"Xero time entry {entry_id} holds {entry.get('duration')} minutes, its {len(members)} "
                        f"lines {total}: the summary was changed in Xero"))
                out += [PostedTime(id=entry_id, line_key=m.line_key, project_external_id=m.project_external_id,
                                   employee_external_id=m.employee_external_id, date=m.date, hours=m.hours,
                                   amount=Money(amount=Decimal(m.amount), currency=m.currency), billable=m.billable)
                        for m in members if _within(m.date, date_from, date_to)]
                continue
            # Time entered in Xero by hand: one line, priced at its task's rate.
            if tasks is None:
                tasks = {str(t["taskId"]): t async for page in
                         self.client.projects_pages(f"/Projects/{project_id}/Tasks") for t in page}
            task = tasks.get(str(entry.get("taskId")), {})
            rate = task.get("rate") or {}
            day = xero_date(entry.get("dateUtc"))
            hours = Decimal(int(entry.get("duration") or 0)) / 60
            if _within(day, date_from, date_to):
                out.append(PostedTime(
                    id=entry_id, line_key=entry_id, project_external_id=external_id,
                    employee_external_id=str(entry.get("userId")), date=day, hours=str(hours.normalize()),
                    amount=Money(amount=(hours * Decimal(str(rate.get("value") or 0))).quantize(Decimal("0.01")),
                                 currency=str(rate.get("currency") or record.get("currencyCode"))),
                    billable=task.get("chargeType") == "TIME"))
        return out


def _within(day: dt.date, date_from: dt.date | None, date_to: dt.date | None) -> bool:
    return (date_from is None or day >= date_from) and (date_to is None or day <= date_to)


def _by_reason(refused: dict[str, tuple[str, ErpRefusalReason]]) -> dict[tuple[str, ErpRefusalReason], list[str]]:
    out: dict[tuple[str, ErpRefusalReason], list[str]] = {}
    for key, reason in refused.items():
        out.setdefault(reason, []).append(key)
    return out
