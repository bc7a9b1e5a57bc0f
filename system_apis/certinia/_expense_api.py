"""Reading expenses and a project's expense limits from the Certinia org over SOQL (used by `api`).

Expenses page like the other keyset lists (``WHERE Id > :last ORDER BY Id LIMIT n+1``), not by
query locator (they expire after 15 minutes idle; a canonical cursor must not), and the cursor
carries the whole query, as the time domain asks. One expense is one canonical item, so a page
holds exactly `limit` expenses unless it is the last. Each page costs two queries: the expenses,
then their receipts (``ContentDocumentLink`` by LinkedEntityId, which Salesforce requires as a
filter: an unfiltered query of that object is refused), in `IN_CHUNK` slices.

The reads are idempotent (GET, retried on a 5xx or 429 by the client); nothing is written here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import msgspec

from contracts.common import Page
from contracts.problems import invalid_cursor
from contracts.psa import ExpenseTerms
from contracts.time import Expense, TimeEntryStatus
from foundation.paging import decode_position, encode_position
from system_apis._internal.force_rest import soql_literal
from system_apis.certinia._expense_mapping import (
    EXPENSE_FIELDS,
    EXPENSE_LIMIT_FIELDS,
    EXPENSE_STATUS_TO,
    RECEIPT_LINK_FIELDS,
    expense_of,
    expense_terms_of,
    receipts_of,
)
from system_apis.certinia._queries import Record, chunks, collect, is_id, not_found, select, soql_in, unreadable
from system_apis.certinia.client import CertiniaClient
from system_apis.certinia.mapping import MappingError
from system_apis.domains.time import TimeEntryQuery

__all__ = ["expense_page", "expense_terms", "read_expense"]

_LIST_ID = "time.expenses"


class _ExpenseCursor(msgspec.Struct, frozen=True, kw_only=True):
    after: str
    status: TimeEntryStatus | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    updated_since: dt.datetime | None = None
    project_code: str | None = None


def _where(query: TimeEntryQuery) -> list[str]:
    where = []
    if query.status == "approved":
        where.append("pse__Approved__c = true")  # the box wins over the picklist (see _expense_mapping)
    elif query.status is not None:
        where += [f"pse__Status__c = {soql_literal(EXPENSE_STATUS_TO[query.status])}", "pse__Approved__c = false"]
    if query.start is not None:
        where.append(f"pse__Expense_Date__c >= {query.start.isoformat()}")
    if query.end is not None:
        where.append(f"pse__Expense_Date__c <= {query.end.isoformat()}")
    if query.updated_since is not None:
        where.append(f"LastModifiedDate >= {soql_literal(query.updated_since)}")
    if query.project_code is not None:
        where.append(f"pse__Project__r.External_Id__c = {soql_literal(query.project_code)}")
    return where


async def _receipts(client: CertiniaClient, expense_ids: Sequence[str]) -> dict[str, str]:
    links: list[Record] = []
    for ids in chunks(expense_ids):
        links += await collect(client.query(select("ContentDocumentLink", RECEIPT_LINK_FIELDS,
                                                   [f"LinkedEntityId IN {soql_in(ids)}"])))
    return receipts_of(links)


async def _expenses(client: CertiniaClient, records: list[Record], default_currency: str) -> list[Expense]:
    receipts = await _receipts(client, [str(r["Id"]) for r in records]) if records else {}
    try:
        return [expense_of(r, receipts.get(str(r["Id"])), default_currency=default_currency) for r in records]
    except MappingError as exc:
        raise unreadable(exc, "expense") from exc


async def expense_page(client: CertiniaClient, query: TimeEntryQuery, limit: int, cursor: str | None, *,
                       default_currency: str = "USD") -> Page[Expense]:
    """One page of expenses matching `query`, or the query `cursor` carries (its filters win)."""
    after: str | None = None
    if cursor:
        position = decode_position(cursor, _ExpenseCursor, _LIST_ID)
        if not is_id(position.after):
            raise invalid_cursor()
        after = position.after
        query = TimeEntryQuery(status=position.status, start=position.start, end=position.end,
                               updated_since=position.updated_since, project_code=position.project_code)
    where = _where(query)
    if after is not None:
        where.append(f"Id > {soql_literal(after)}")
    # One extra row tells whether another page exists without a COUNT() round trip.
    records = await collect(client.query(select("pse__Expense__c", EXPENSE_FIELDS, where, "Id", limit + 1)))
    page = records[:limit]
    items = await _expenses(client, page, default_currency)
    if len(records) <= limit:
        return Page(items=items)
    following = _ExpenseCursor(after=str(page[-1]["Id"]), status=query.status, start=query.start, end=query.end,
                               updated_since=query.updated_since, project_code=query.project_code)
    return Page(items=items, next_cursor=encode_position(following, _LIST_ID))


async def read_expense(client: CertiniaClient, expense_id: str, *, default_currency: str = "USD") -> Expense:
    if not is_id(expense_id):
        raise not_found("expense", expense_id)
    records = await collect(client.query(select("pse__Expense__c", EXPENSE_FIELDS,
                                                [f"Id = {soql_literal(expense_id)}"], limit=1)))
    if not records:
        raise not_found("expense", expense_id)
    return (await _expenses(client, records, default_currency))[0]


async def expense_terms(client: CertiniaClient, projects: Sequence[Record], *,
                        default_currency: str = "USD") -> dict[str, ExpenseTerms | None]:
    """Project id -> its contract's expense terms: the custom project fields and the project's expense limits."""
    ids = [str(p["Id"]) for p in projects if p.get("Billable_Expense_Types__c")]
    limits: dict[str, list[Record]] = {}
    for chunk in chunks(ids):
        for limit in await collect(client.query(select(
                "pse__Expense_Limit_Rate__c", EXPENSE_LIMIT_FIELDS,
                [f"pse__Project__c IN {soql_in(chunk)}", "pse__Is_Rate__c = false", "pse__Is_Active__c = true"]))):
            limits.setdefault(str(limit["pse__Project__c"]), []).append(limit)
    return {str(p["Id"]): expense_terms_of(p, limits.get(str(p["Id"]), []),
                                           currency=str(p.get("CurrencyIsoCode") or default_currency))
            for p in projects}
