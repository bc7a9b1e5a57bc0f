"""The console's audit page and CSV export: the audit trail API, read on behalf of the signed-in person.

The page shows one page of events with the filters of the audit API (dates instead of
instants: a reader picks days, the trail is kept in UTC). The export walks every page
of the same filters and streams them as CSV, one row per event; a cell that a
spreadsheet would run as a formula (`=`, `+`, `-`, `@`) is prefixed with `'`, so an id
chosen by a caller cannot become a formula on a finance desk.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import msgspec

from contracts.audit import AuditEntry
from contracts.common import Page
from contracts.problems import FieldError, ProblemError

__all__ = ["COLUMNS", "AuditFilters", "audit_csv", "audit_page"]

Call = Callable[[Mapping[str, str | int]], Awaitable[Any]]
PAGE_SIZE = 50
EXPORT_PAGE = 500
COLUMNS = ("at", "actor", "client_id", "person", "api", "operation_id", "method", "path", "entity_type", "entity_id",
           "action", "legal_entity", "correlation_id", "status", "problem_code", "records", "changes")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


class AuditFilters(msgspec.Struct, frozen=True, kw_only=True):
    """What the reader chose in the filter form (dates as typed, checked when sent)."""

    date_from: str = ""
    date_to: str = ""
    client: str = ""
    operation: str = ""
    legal_entity: str = ""
    outcome: str = ""

    @classmethod
    def of(cls, query: Mapping[str, Any]) -> AuditFilters:
        def value(name: str) -> str:
            got = query.get(name)
            return str(got).strip()[:120] if got else ""
        return cls(date_from=value("from"), date_to=value("to"), client=value("client"),
                   operation=value("operation"), legal_entity=value("legal_entity"), outcome=value("outcome"))

    def form(self) -> dict[str, str]:
        """The filters as the page's own query string carries them."""
        chosen = {"from": self.date_from, "to": self.date_to, "client": self.client, "operation": self.operation,
                  "legal_entity": self.legal_entity, "outcome": self.outcome}
        return {k: v for k, v in chosen.items() if v}

    def link(self, **extra: str) -> str:
        return urlencode({**self.form(), **extra})

    def api_params(self) -> dict[str, str]:
        """The audit API's query: `from` at the start of its day (UTC), `to` at the end of its day."""
        params = {k: v for k, v in {"client": self.client, "operation": self.operation,
                                    "legal_entity": self.legal_entity, "outcome": self.outcome}.items() if v}
        if self.date_from:
            params["from"] = _day(self.date_from, "from").isoformat()
        if self.date_to:
            params["to"] = (_day(self.date_to, "to") + dt.timedelta(days=1)).isoformat()
        return params


def _day(text: str, field: str) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ProblemError(422, "validation-error", "Validation failed", f"`{field}` must be a date, YYYY-MM-DD.",
                           errors=[FieldError(pointer=field, detail="not a date (YYYY-MM-DD)")]) from None
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


async def audit_page(call: Call, filters: AuditFilters, cursor: str | None) -> Page[AuditEntry]:
    params: dict[str, str | int] = {**filters.api_params(), "limit": PAGE_SIZE}
    if cursor:
        params["cursor"] = cursor
    return msgspec.convert(await call(params), Page[AuditEntry])


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    text = value.isoformat() if isinstance(value, dt.datetime) else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


async def audit_csv(call: Call, filters: AuditFilters) -> AsyncIterator[str]:
    """The CSV, a page of the trail at a time; the header comes after the first page is read."""
    params: dict[str, str | int] = {**filters.api_params(), "limit": EXPORT_PAGE}
    page = msgspec.convert(await call(params), Page[AuditEntry])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    while True:
        for event in page.items:
            writer.writerow([_cell(getattr(event, name)) for name in COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if not page.next_cursor:
            return
        page = msgspec.convert(await call({**params, "cursor": page.next_cursor}), Page[AuditEntry])
