"""Intercompany charges on Xero: each side recorded once, as an approved invoice or bill, and read back.

What a side becomes in Xero: see `_intercompany_mapping`. Recording one:

- refused before anything is sent: another legal entity's side, a charge to this entity itself, a charge Xero
  could not hold exactly (`charge_problem`), a period ending on or before the organisation's ``PeriodLockDate``
  (``period_closed``: Xero keeps one lock date for receivables and payables, and would refuse the document too,
  which `XeroLookups._write` answers with the same code);
- the counterparty's contact (``ContactNumber`` ``IC:<code>``) is found, or made on first use under an
  ``Idempotency-Key`` of its number; a second worker making it meanwhile is refused by Xero (contact numbers are
  unique here) and the contact is read again;
- a charge in another currency than the organisation's needs the currency added to the organisation first
  (``PUT /Currencies``; https://developer.xero.com/documentation/api/accounting/currencies), done once;
- the document is created with ``PUT /Invoices`` or ``PUT /CreditNotes`` (create only: never an update of
  what is booked; https://developer.xero.com/documentation/api/accounting/invoices#put-invoices), ``unitdp=4``,
  ``summarizeErrors=true`` (one document: Xero's refusal is the call's 400, its message kept in the problem).

Once per external id, however the call is repeated:

- the number ``IC:<external id>`` is looked up first (``InvoiceNumbers``, ``where CreditNoteNumber==``): a
  document already there is the answer (200), whatever the lines sent now (Xero cannot change a booked document;
  a correction is a charge of its own);
- the create call carries an ``Idempotency-Key`` of the external id and the charge, so the client's retry of an
  answer lost to a timeout or a 5xx is answered by Xero with the first answer and creates nothing
  (https://developer.xero.com/documentation/guides/idempotent-requests/idempotency/);
- a create refused because the number exists (``ACCREC`` numbers are unique in Xero: a concurrent worker, or a
  retry after Xero forgot the key) is answered with the document found by the number.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import msgspec

from contracts.billing import IntercompanyCharge, IntercompanyChargeUpsert
from contracts.common import Page
from contracts.problems import FieldError, ProblemError
from foundation.periods import month_bounds
from system_apis._internal.http import VendorRejected
from system_apis.xero._intercompany_mapping import (
    CHARGE_PREFIX,
    POSTED_STATUSES,
    Collection,
    charge_from_record,
    charge_number,
    charge_problem,
    collection_of,
    counterparty_contact,
    counterparty_number,
    document_from_charge,
    document_type,
    external_id_of,
)
from system_apis.xero._lookups import XeroLookups, vendor_data_invalid
from system_apis.xero.client import ACCOUNTING, idempotency_key
from system_apis.xero.mapping import MappingError, due_date, xero_date

__all__ = ["XeroIntercompany"]

_LIST_ID: Final = "erp.xero.intercompany"
_NUMBER_FIELD: Final[dict[Collection, str]] = {"Invoices": "InvoiceNumber", "CreditNotes": "CreditNoteNumber"}
_COLLECTIONS: Final[tuple[Collection, ...]] = ("Invoices", "CreditNotes")
_UNITDP: Final = {"unitdp": 4}
"""Quantities (hours) and unit amounts (rates) to four places, as Xero holds them, not rounded to two."""


def _invalid(pointer: str, detail: str) -> ProblemError:
    return ProblemError(422, "validation-error", "Validation failed", f"{pointer}: {detail}.",
                        errors=[FieldError(pointer=pointer, detail=detail)], code="validation_failed")


class XeroIntercompany(XeroLookups):
    """Intercompany charges; mixed into `XeroErp`, which sets `code`."""

    code: str
    _currencies: set[str] | None = None
    """The currencies added to the organisation, as last read (a miss reads Xero again)."""

    # ------------------------------------------------------------------ recording one side

    async def upsert_intercompany_charge(self, external_id: str,
                                         data: IntercompanyChargeUpsert) -> tuple[IntercompanyCharge, bool]:
        if data.legal_entity_id not in (self.client.tenant, self.code):
            raise ProblemError(422, "unknown-legal-entity", "Unknown legal entity",
                               f"This Xero organisation is legal entity {self.code} ({self.client.tenant}), "
                               f"not {data.legal_entity_id!r}.", code="unknown_legal_entity")
        if data.counterparty == self.code:
            raise _invalid("/counterparty", f"is this entity ({self.code}): a charge is to another entity")
        problem = charge_problem(data)
        if problem is not None:
            raise _invalid(*problem)
        existing = await self._charge_record(external_id)
        if existing is not None:
            return self._existing(external_id, existing, data), False
        org = await self._organisation()
        date = month_bounds(data.period)[1]
        lock = xero_date(org["PeriodLockDate"]) if org.get("PeriodLockDate") else None
        if lock is not None and date <= lock:
            raise ProblemError(422, "period-closed", "Accounting period closed",
                               f"Xero's books of this organisation are locked up to {lock.isoformat()}: no "
                               f"charge can be dated {date.isoformat()}.", code="period_closed")
        if data.currency != org.get("BaseCurrency"):
            await self._ensure_currency(data.currency)
        contact_id = await self._counterparty(data.counterparty)
        tracked: set[str] = set()
        if data.side == "payable":  # the project is this entity's: tracked where Xero knows it
            for project in sorted({ln.project_external_id for ln in data.lines}):
                if await self._project_record(project) is not None:
                    await self._ensure_tracking_option(project)
                    tracked.add(project)
        collection = collection_of(data)
        terms = (org.get("PaymentTerms") or {}).get("Sales" if data.side == "receivable" else "Bills")
        try:
            due = due_date(date, terms)
        except MappingError as exc:
            raise vendor_data_invalid(exc) from exc
        body = document_from_charge(external_id, data, contact_id=contact_id, date=date, due=due,
                                    tracked=frozenset(tracked))
        key = idempotency_key("intercompany", self.client.tenant, external_id,
                              hashlib.sha256(msgspec.json.encode(data)).hexdigest()[:16])
        try:
            saved = await self._write(lambda: self.client.request(
                "PUT", f"{ACCOUNTING}/{collection}", params={**_UNITDP, "summarizeErrors": "true"},
                json={collection: [body]}, key=key))
        except ProblemError:
            again = await self._charge_record(external_id)  # made meanwhile, or made before Xero forgot the key
            if again is None:
                raise
            return self._existing(external_id, again, data), False
        return self._charge(dict(saved[collection][0])), True

    def _existing(self, external_id: str, record: dict[str, Any], data: IntercompanyChargeUpsert) -> IntercompanyCharge:
        """The document already recorded under `external_id`: the answer, unless it is no longer booked or is
        another side (a different charge under the same id)."""
        if record.get("Status") not in POSTED_STATUSES:
            raise ProblemError(409, "conflict", "Charge voided in the ERP",
                               f"Xero holds intercompany charge {external_id} as {record.get('Status')}: record it "
                               "again under a new external id.", code="conflict")
        charge = self._charge(record)
        if charge.side != data.side or charge.counterparty != data.counterparty:
            raise ProblemError(409, "conflict", "External id already used",
                               f"Intercompany charge {external_id} is recorded as the {charge.side} of "
                               f"{charge.counterparty}, not the {data.side} of {data.counterparty}.", code="conflict")
        return charge

    def _charge(self, record: dict[str, Any]) -> IntercompanyCharge:
        try:
            return charge_from_record(record, tenant=self.client.tenant)
        except (MappingError, KeyError, ValueError) as exc:
            raise vendor_data_invalid(MappingError(str(exc))) from exc

    async def _charge_record(self, external_id: str) -> dict[str, Any] | None:
        """The invoice, bill or credit note numbered ``IC:<external id>``; a booked one before a voided one."""
        number = charge_number(external_id)
        found: list[dict[str, Any]] = []
        body = await self.client.get(f"{ACCOUNTING}/Invoices", {"InvoiceNumbers": number, **_UNITDP})
        found += [dict(r) for r in body.get("Invoices") or [] if r.get("InvoiceNumber") == number]
        body = await self.client.get(f"{ACCOUNTING}/CreditNotes",
                                     {"where": f'CreditNoteNumber=="{number}"', **_UNITDP})
        found += [dict(r) for r in body.get("CreditNotes") or [] if r.get("CreditNoteNumber") == number]
        sides = {document_type(s, c) for s in ("receivable", "payable") for c in _COLLECTIONS}
        found = [r for r in found if r.get("Type") in sides and r.get("Status") != "DELETED"]
        found.sort(key=lambda r: r.get("Status") not in POSTED_STATUSES)
        return found[0] if found else None

    async def _counterparty(self, code: str) -> str:
        """The ContactID of the contact standing for entity `code`, made on first use."""
        number = counterparty_number(code)
        found = await self._counterparty_contact(number)
        if found is not None:
            return found
        try:
            body = await self.client.request("POST", f"{ACCOUNTING}/Contacts",
                                             json={"Contacts": [counterparty_contact(code)]},
                                             key=idempotency_key("intercompany-contact", self.client.tenant, number))
        except VendorRejected:  # made meanwhile by another worker (its number is taken): use that one
            found = await self._counterparty_contact(number)
            if found is None:
                raise
            return found
        return str(body["Contacts"][0]["ContactID"])

    async def _counterparty_contact(self, number: str) -> str | None:
        body = await self.client.get(f"{ACCOUNTING}/Contacts", {"where": f'ContactNumber=="{number}"'})
        found = [c for c in body.get("Contacts") or [] if c.get("ContactNumber") == number]
        return str(found[0]["ContactID"]) if found else None

    async def _ensure_currency(self, code: str) -> None:
        """Xero refuses a document in a currency the organisation has not added."""
        if self._currencies is None or code not in self._currencies:
            body = await self.client.get(f"{ACCOUNTING}/Currencies")
            self._currencies = {str(c.get("Code")) for c in body.get("Currencies") or []}
        if code not in self._currencies:
            await self._write(lambda: self.client.request("PUT", f"{ACCOUNTING}/Currencies", json={"Code": code},
                                                          key=idempotency_key("currency", self.client.tenant, code)))
            self._currencies.add(code)

    # ------------------------------------------------------------------ reading them back

    async def list_intercompany_charges(self, period: str | None, counterparty: str | None, limit: int,
                                        cursor: str | None) -> Page[IntercompanyCharge]:
        q = f"{period}|{counterparty}"

        async def read() -> list[IntercompanyCharge]:
            records: list[dict[str, Any]] = []
            for collection in _COLLECTIONS:
                clauses = [f'{_NUMBER_FIELD[collection]}.StartsWith("{CHARGE_PREFIX}")']
                if counterparty is not None:
                    clauses.append(f'Reference.StartsWith("IC {counterparty} {period or ""}")')
                if period is not None:  # dated the period's last day; the reference says which period
                    end = month_bounds(period)[1]
                    clauses.append(f"Date>=DateTime({end.year},{end.month:02d},01)")
                    clauses.append(f"Date<=DateTime({end.year},{end.month:02d},{end.day:02d})")
                async for page in self.client.accounting_pages(collection, {"where": " AND ".join(clauses),
                                                                            **_UNITDP}):
                    records += [r for r in page if r.get("Status") in POSTED_STATUSES
                                and external_id_of(r.get(_NUMBER_FIELD[collection])) is not None]
            items = [self._charge(r) for r in records]
            items = [c for c in items if period in (None, c.period) and counterparty in (None, c.counterparty)]
            items.sort(key=lambda c: (c.period, c.external_id, c.side))
            return items

        return await self.listings.page(_LIST_ID, q, limit, cursor, read)
