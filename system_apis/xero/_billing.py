"""Invoices and credit notes on Xero (ACCREC / ACCRECCREDIT): upsert by number, list by project, period and
last change (``If-Modified-Since``). The intercompany charges among them (numbered ``IC:``, see `_intercompany`)
are no customer invoices: the lists leave them out."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

import msgspec

from contracts.billing import (
    CreditMemo,
    CreditMemoUpsert,
    Invoice,
    InvoiceUpsert,
)
from contracts.common import Page
from contracts.problems import ProblemError
from foundation.periods import month_bounds
from system_apis.xero._intercompany_mapping import CHARGE_PREFIX
from system_apis.xero._lookups import vendor_data_invalid
from system_apis.xero._posting import XeroPosting
from system_apis.xero.client import ACCOUNTING, idempotency_key, if_modified_since
from system_apis.xero.mapping import (
    MappingError,
    credit_memo_from_note,
    credit_note_from_upsert,
    invoice_from_record,
    invoice_from_upsert,
)

__all__ = ["XeroBilling"]


class XeroBilling(XeroPosting):
    """Invoices and credit notes; the base of `XeroErp`."""

    # ------------------------------------------------------------------ invoices and credit notes

    async def _document(self, collection: str, number_field: str, number: str) -> dict[str, Any] | None:
        body = await self.client.get(f"{ACCOUNTING}/{collection}", {"where": f'{number_field}=="{number}"'})
        found = body.get(collection) or []
        return dict(found[0]) if found else None

    async def upsert_invoice(self, external_id: str, data: InvoiceUpsert) -> tuple[Invoice, bool]:
        if await self._project_record(data.project_external_id) is None:
            raise ProblemError(422, "unknown-project", "Refused by the ERP",
                               f"Xero has no project {data.project_external_id!r}.", code="unknown_project")
        await self._ensure_tracking_option(data.project_external_id)
        existing = await self._document("Invoices", "InvoiceNumber", external_id)
        body = invoice_from_upsert(external_id, data, invoice_id=existing.get("InvoiceID") if existing else None,
                                   date=month_bounds(data.period)[1])
        key = idempotency_key("invoice", external_id, hashlib.sha256(msgspec.json.encode(data)).hexdigest()[:16])
        saved = await self._write(lambda: self.client.request("POST", f"{ACCOUNTING}/Invoices",
                                                              json={"Invoices": [body]}, key=key))
        try:
            return invoice_from_record(dict(saved["Invoices"][0]), tenant=self.client.tenant), existing is None
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc

    async def upsert_credit_memo(self, external_id: str, data: CreditMemoUpsert) -> tuple[CreditMemo, bool]:
        if await self._document("Invoices", "InvoiceNumber", data.invoice_external_id) is None:
            raise ProblemError(422, "unknown-invoice", "Refused by the ERP",
                               f"Xero has no invoice {data.invoice_external_id!r}.", code="unknown_invoice")
        await self._ensure_tracking_option(data.project_external_id)
        existing = await self._document("CreditNotes", "CreditNoteNumber", external_id)
        body = credit_note_from_upsert(external_id, data, date=month_bounds(data.period)[1],
                                       credit_note_id=existing.get("CreditNoteID") if existing else None)
        key = idempotency_key("credit", external_id, hashlib.sha256(msgspec.json.encode(data)).hexdigest()[:16])
        saved = await self._write(lambda: self.client.request("POST", f"{ACCOUNTING}/CreditNotes",
                                                              json={"CreditNotes": [body]}, key=key))
        try:
            return credit_memo_from_note(dict(saved["CreditNotes"][0])), existing is None
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc

    async def _documents(self, collection: str, where: str, limit: int, cursor: str | None, q: str,
                         headers: Mapping[str, str] | None = None) -> Page[dict[str, Any]]:
        number = "InvoiceNumber" if collection == "Invoices" else "CreditNoteNumber"

        async def read() -> list[dict[str, Any]]:
            return [r async for page in self.client.accounting_pages(collection, {"where": where} if where else None,
                                                                     headers=headers) for r in page
                    if not str(r.get(number) or "").startswith(CHARGE_PREFIX)]  # intercompany: `_intercompany`

        return await self.listings.page(f"erp.xero.{collection}", q, limit, cursor, read)

    @staticmethod
    def _where(kind: str, project_external_id: str | None, period: str | None) -> str:
        clauses = [f'Type=="{kind}"']
        if project_external_id is not None and period is not None:
            clauses.append(f'Reference.StartsWith("{project_external_id} {period}")')
        elif project_external_id is not None:
            clauses.append(f'Reference.StartsWith("{project_external_id} ")')
        return " AND ".join(clauses)

    async def list_invoices(self, project_external_id: str | None, period: str | None, limit: int,
                            cursor: str | None, updated_since: dt.datetime | None = None) -> Page[Invoice]:
        """``updated_since`` goes to Xero as ``If-Modified-Since`` (to the second, rounded down); the invoices
        changed in that second before the instant itself are dropped here."""
        where = self._where("ACCREC", project_external_id, period)
        since = updated_since.replace(tzinfo=dt.UTC) if updated_since and updated_since.tzinfo is None \
            else updated_since
        headers = {"If-Modified-Since": if_modified_since(since)} if since is not None else None
        q = f"{where}|{period}|{since.isoformat() if since else ''}"
        records = await self._documents("Invoices", where, limit, cursor, q, headers)
        try:
            items = [invoice_from_record(r, tenant=self.client.tenant) for r in records.items]
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc
        return Page(items=[i for i in items if (period is None or i.period == period) and (
            since is None or (i.updated_at is not None and i.updated_at >= since))], next_cursor=records.next_cursor)

    async def list_credit_memos(self, project_external_id: str | None, period: str | None, limit: int,
                                cursor: str | None) -> Page[CreditMemo]:
        where = self._where("ACCRECCREDIT", project_external_id, period)
        records = await self._documents("CreditNotes", where, limit, cursor, f"{where}|{period}")
        try:
            items = [credit_memo_from_note(r) for r in records.items]
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc
        return Page(items=[m for m in items if period is None or m.period == period],
                    next_cursor=records.next_cursor)


