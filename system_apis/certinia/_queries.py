"""SOQL text, Salesforce ids and the problems every Certinia read raises: shared by `api` and `_expense_api`.

Kept apart from both so the expense reader (a module of its own, `api` being at its size limit)
builds its queries and refuses ids exactly as the timecard and project reads do.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Final

from contracts.problems import ProblemError
from system_apis._internal.force_rest import soql_literal
from system_apis._internal.http import VendorRejected
from system_apis.certinia.client import VENDOR
from system_apis.certinia.mapping import MappingError

__all__ = ["IN_CHUNK", "Record", "chunks", "collect", "is_id", "not_found", "select", "soql_in", "unreadable"]

Record = dict[str, Any]
_SF_ID: Final = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")
IN_CHUNK: Final = 200
"""Ids per ``IN (...)`` list: a query travels in the URL, which Salesforce caps at 16,384 bytes (414 beyond);
200 quoted 18-character ids stay near 5,000 once URL-encoded.
https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm"""


def is_id(value: str) -> bool:
    """A 15- or 18-character Salesforce id (anything else is never sent to the org)."""
    return bool(_SF_ID.match(value))


def not_found(what: str, key: str) -> ProblemError:
    return ProblemError(404, "not-found", "Not found", f"No Certinia {what} {key!r}.", code="not_found")


def unreadable(exc: MappingError, what: str) -> VendorRejected:
    return VendorRejected(VENDOR, f"unreadable {what} record: {exc}", status=502)


def soql_in(values: Sequence[str]) -> str:
    return "(" + ", ".join(soql_literal(v) for v in values) + ")"


def chunks(values: Sequence[str], size: int = IN_CHUNK) -> Iterator[Sequence[str]]:
    """`values` in slices short enough for one ``IN`` list (see `IN_CHUNK`)."""
    for start in range(0, len(values), size):
        yield values[start:start + size]


def select(sobject: str, fields: Sequence[str], where: Sequence[str] = (), order: str | None = None,
           limit: int | None = None) -> str:
    soql = f"SELECT {', '.join(fields)} FROM {sobject}"
    if where:
        soql += " WHERE " + " AND ".join(where)
    if order:
        soql += f" ORDER BY {order}"
    if limit is not None:
        soql += f" LIMIT {limit}"
    return soql


async def collect(records: AsyncIterator[Record]) -> list[Record]:
    """Every record of a query (the client follows ``nextRecordsUrl``)."""
    return [record async for record in records]
