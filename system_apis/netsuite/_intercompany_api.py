"""Intercompany charges on NetSuite: each side one booked transaction in its subsidiary, once per external id.

The receivable is an ``invoice`` to the customer that represents the counterparty, the payable a ``vendorBill``
from the vendor that represents it (``_intercompany_mapping`` has the wire shapes). Recording one side:

1. The external id is looked up first (``GET /{type}/eid:{id}``): a document NetSuite holds is answered as it is
   (200) and nothing is written — a booked receivable or payable is corrected by a reversal line in a later
   charge, never rewritten. A retry after a timeout or a 5xx therefore finds what the lost attempt wrote.
2. The period must exist for the subsidiary and be open for the side's ledger (read fresh: closed or A/R-locked
   for an invoice, closed or A/P-locked for a bill): else 422 ``period_closed`` before anything is written, and
   NetSuite's own ``PERIOD_CLOSED`` maps to the same problem should the period close in between.
3. The counterparty entity is found or created: by its external id (``IC-CUST-<code>`` / ``IC-VEND-<code>``),
   else — when the counterparty is a subsidiary of this account — the customer or vendor NetSuite already has
   representing it (``representingSubsidiary``, e.g. one its Automated Intercompany Management generated), else
   created by ``PUT eid:`` (an upsert: a retried or racing first use makes one record). An entity whose primary
   subsidiary is another is shared with this one by a ``customerSubsidiaryRelationship`` /
   ``vendorSubsidiaryRelationship`` (looked up first; NetSuite refuses a second one for the same pair).
4. The document is upserted by external id with ``replace=item`` (``PUT`` is retried on 5xx as idempotent: the
   same external id lands on the same document, and ``replace`` keeps its lines from doubling).

Reading back is SuiteQL: one statement for the documents of a page, one for their lines.

Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/article_159067444188.html (representing
entities), https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/article_161521122959.html (customer
subsidiary relationship), https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_157909186990.html
(SuiteQL)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from contracts.billing import IntercompanyCharge, IntercompanyChargeUpsert, IntercompanySide
from contracts.common import Page
from contracts.problems import FieldError, ProblemError, invalid_cursor
from foundation.paging import decode_position, encode_position
from system_apis._internal.http import VendorRejected
from system_apis.netsuite._billing_api import NetSuiteBilling, _refusal, vendor_data_invalid
from system_apis.netsuite._intercompany_mapping import (
    RECORD_TYPES,
    charge_from_rows,
    charge_to_record,
    counterparty_external_id,
    counterparty_to_record,
    is_intercompany,
)
from system_apis.netsuite._queries import intercompany_charges_query, intercompany_lines_query
from system_apis.netsuite.client import MAX_PAGE
from system_apis.netsuite.mapping import MappingError, _currency

__all__ = ["NetSuiteIntercompany"]

Record = dict[str, Any]
_LIST: Final = "erp.intercompanyCharges"
_EXTERNAL_ID: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
_LOCK: Final[dict[IntercompanySide, str]] = {"receivable": "arLocked", "payable": "apLocked"}
_RELATIONSHIPS: Final = {"customer": "customerSubsidiaryRelationship", "vendor": "vendorSubsidiaryRelationship"}


class _QueryPosition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    q: str  # digest of the statement, so a cursor only resumes the list (filters) that issued it
    o: int


def _problem(code: str, detail: str, title: str, pointer: str | None = None) -> ProblemError:
    errors = [FieldError(pointer=pointer, detail=detail)] if pointer else None
    return ProblemError(422, code.replace("_", "-"), title, detail, errors=errors, code=code)


class NetSuiteIntercompany(NetSuiteBilling):
    """Mixed into `NetSuiteErp`: `ErpSystem`'s intercompany charges."""

    # ------------------------------------------------------------------ recording

    async def upsert_intercompany_charge(self, external_id: str,
                                         data: IntercompanyChargeUpsert) -> tuple[IntercompanyCharge, bool]:
        if not _EXTERNAL_ID.match(external_id):
            raise _problem("validation_failed", "NetSuite external ids are 1-80 of [A-Za-z0-9_.:-].",
                           "Validation failed")
        record_type = RECORD_TYPES[data.side]
        existing = await self.client.find_by_external_id(record_type, external_id)
        if existing is not None:
            if not is_intercompany(existing):
                raise ProblemError(409, "conflict", "External id in use", f"NetSuite's {record_type} {external_id!r} "
                                   "is not an intercompany charge.", code="conflict")
            return await self._charge(str(existing["id"])), False
        period_id, end = await self._period(data.legal_entity_id, data.period)
        await self._open_for(data.side, period_id)
        entity_id = await self._counterparty(data)
        jobs = await self._own_jobs(data) if data.side == "payable" else {}
        body = charge_to_record(external_id, data, entity_id=entity_id, period_id=period_id, tran_date=end,
                                job_ids=jobs)
        try:
            internal = await self.client.upsert(record_type, external_id, body, replace=("item",))
        except VendorRejected as exc:
            problem = _refusal(exc)
            if problem is None:
                raise
            raise problem from exc
        return await self._charge(internal), True

    async def _open_for(self, side: IntercompanySide, period_id: str) -> None:
        """Refuse a period closed or locked for the side's ledger (flags read fresh; NetSuite checks again)."""
        period = await self.client.get("accountingPeriod", period_id)
        if period.get("isClosed") or period.get(_LOCK[side]):
            raise _problem("period_closed", f"NetSuite's accounting period {period.get('periodName')} is closed or "
                           f"locked for {'receivables' if side == 'receivable' else 'payables'}.",
                           "Accounting period closed", "/period")

    async def _subsidiary_by_code(self, code: str) -> Record | None:
        """The subsidiary of this account with entity code ``code``, if it holds one."""
        page = await self.client.list_ids("subsidiary", q=f'custrecord_psc_code IS "{code}"', limit=1)
        return await self.client.get("subsidiary", page.ids[0]) if page.ids else None

    async def _counterparty(self, data: IntercompanyChargeUpsert) -> str:
        """The internal id of the customer (receivable) or vendor (payable) representing the counterparty in this
        subsidiary, found or created (see the module docstring, step 3)."""
        record_type, eid = counterparty_external_id(data.side, data.counterparty)
        record = await self.client.find_by_external_id(record_type, eid)
        if record is None:
            represented = await self._subsidiary_by_code(data.counterparty)
            if represented is not None and str(represented["id"]) == data.legal_entity_id:
                raise _problem("validation_failed", f"{data.counterparty} is this legal entity; it cannot charge "
                               "itself.", "Validation failed", "/counterparty")
            if represented is not None:
                page = await self.client.list_ids(record_type, q=f"representingSubsidiary EQUAL {represented['id']}",
                                                  limit=1)
                record = await self.client.get(record_type, page.ids[0]) if page.ids else None
            if record is None:
                try:
                    currency = _currency(represented) if represented is not None else data.currency
                except MappingError:
                    currency = data.currency
                name = str(represented.get("name")) if represented is not None else f"Intercompany {data.counterparty}"
                body = counterparty_to_record(eid, data.counterparty, name=name, subsidiary_id=data.legal_entity_id,
                                              currency=currency,
                                              represented_id=str(represented["id"]) if represented else None)
                return await self.client.upsert(record_type, eid, body)
        internal = str(record["id"])
        if str((record.get("subsidiary") or {}).get("id")) != data.legal_entity_id:
            await self._share(record_type, internal, data.legal_entity_id)
        return internal

    async def _share(self, record_type: str, entity_id: str, subsidiary_id: str) -> None:
        """Share an entity with a subsidiary (once: looked up first, and NetSuite refuses a duplicate pair)."""
        relationship = _RELATIONSHIPS[record_type]
        q = f"entity EQUAL {entity_id} AND subsidiary EQUAL {subsidiary_id}"
        if (await self.client.list_ids(relationship, q=q, limit=1)).ids:
            return
        try:
            await self.client.create(relationship, {"entity": {"id": entity_id}, "subsidiary": {"id": subsidiary_id}})
        except VendorRejected:
            # A racing first use, or a POST whose answer was lost, made it already; anything else is real.
            if not (await self.client.list_ids(relationship, q=q, limit=1)).ids:
                raise

    async def _own_jobs(self, data: IntercompanyChargeUpsert) -> dict[str, str]:
        """Project external id -> job id, for the lines' projects this subsidiary holds (others stay text)."""
        found: dict[str, str] = {}
        for project in sorted({line.project_external_id for line in data.lines}):
            job = (await self.client.find_by_external_id("job", project) if _EXTERNAL_ID.match(project) else None)
            if job is not None and str((job.get("subsidiary") or {}).get("id")) == data.legal_entity_id:
                found[project] = str(job["id"])
        return found

    # ------------------------------------------------------------------ reading back

    async def _charge(self, internal_id: str) -> IntercompanyCharge:
        page = await self.client.suiteql(intercompany_charges_query(internal_id=internal_id), limit=1)
        if not page.rows:
            raise vendor_data_invalid(MappingError(f"document {internal_id} is not a psconnect intercompany charge"))
        return (await self._charges(page.rows))[0]

    async def _charges(self, headers: Sequence[Record]) -> list[IntercompanyCharge]:
        lines: dict[str, list[Record]] = {str(h["id"]): [] for h in headers}
        if lines:
            statement = intercompany_lines_query(list(lines))
            offset: int | None = 0
            while offset is not None:
                page = await self.client.suiteql(statement, limit=MAX_PAGE, offset=offset)
                for row in page.rows:
                    lines.setdefault(str(row.get("transaction")), []).append(row)
                offset = offset + len(page.rows) if page.has_more and page.rows else None
        try:
            return [charge_from_rows(h, lines[str(h["id"])]) for h in headers]
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc

    async def list_intercompany_charges(self, period: str | None, counterparty: str | None, limit: int,
                                        cursor: str | None) -> Page[IntercompanyCharge]:
        try:
            query = intercompany_charges_query(period=period, counterparty=counterparty)
        except ValueError:
            return Page(items=[])  # no document can carry a period or code outside those forms
        digest = hashlib.sha256(query.encode()).hexdigest()[:24]
        offset = 0
        if cursor is not None:
            position = decode_position(cursor, _QueryPosition, _LIST)
            if position.q != digest or position.o < 0:
                raise invalid_cursor("The cursor is not one this list issued.")
            offset = position.o
        page = await self.client.suiteql(query, limit=limit, offset=offset)
        following = (encode_position(_QueryPosition(q=digest, o=offset + len(page.rows)), _LIST)
                     if page.has_more and page.rows else None)
        return Page(items=await self._charges(page.rows), next_cursor=following)
