"""Intercompany charges on Business Central: a posted sales invoice (receivable) or purchase invoice (payable).

The receivable side goes to the counterparty's intercompany customer, the payable side comes from its
intercompany vendor (``_intercompany_mapping``); either is created on first use under the number
``IC-<code>``, the table's unique key, so a race or a retry adopts the first. Neither the consultant nor the
other entity's project need exist here: they travel in the line descriptions and psconnect's record; a payable
line's project, this company's own, is linked by its Business Central id in that record.

Once per external id. Business Central has no idempotency key, so a side is recorded once this way:

1. the ``intercompany``/<external id> record (a unique key) says the side is recorded: it is read back, nothing
   written (200);
2. else the document is looked for by its reference (``externalDocumentNumber`` / ``vendorInvoiceNumber``, the
   external id) and its party — a header created by a call whose answer was lost is adopted, never a second;
3. a draft's lines are replaced and the record written in one transactional ``$batch``, then the document is
   posted (``Microsoft.NAV.post``, not retried on a lost answer); a retried call finds the record and posts a
   document still in draft, or reads the posted one. Business Central itself refuses to post a vendor's invoice
   number twice.

A period closed or date-locked is refused (422 ``period_closed``) before anything is written, as invoices are;
Business Central refusing the posting date at posting is the same 422, and the draft is left for the retry.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from contracts.billing import IntercompanyCharge, IntercompanyChargeUpsert
from contracts.common import Page
from contracts.problems import ProblemError
from system_apis._internal.http import VendorRejected
from system_apis.businesscentral._expenses import BusinessCentralExpenses
from system_apis.businesscentral._index import EXISTS, RECORDS, odata_string, unprocessable
from system_apis.businesscentral._intercompany_mapping import (
    INTERCOMPANY,
    Document,
    charge_from_records,
    charge_header,
    charge_line,
    charge_meta,
    counterparty_number,
    document_of,
    meta_of,
)
from system_apis.businesscentral.client import API_PATH, EXTENSION_PATH, BusinessCentralClient
from system_apis.businesscentral.mapping import MappingError

__all__ = ["BusinessCentralIntercompany"]

Record = dict[str, Any]
_JSON = {"Content-Type": "application/json"}


def _unreadable(detail: str) -> ProblemError:
    return ProblemError(502, "vendor-data-invalid", "Vendor record unreadable", detail, code="vendor_data_invalid")


class BusinessCentralIntercompany(BusinessCentralExpenses):
    """Intercompany charge sides; `BusinessCentralErp` is the whole adapter.

    Args:
        intercompany_revenue_account: the G/L account a receivable's lines are booked to.
        intercompany_cost_account: the G/L account a payable's lines are booked to.
    """

    def __init__(self, client: BusinessCentralClient, *, revenue_account: str, payment_journal: str = "PSCONNECT",
                 payment_account: str = "10100", expense_journal: str = "PSCEXPENSE", expense_account: str = "60100",
                 expense_balancing_account: str = "20700", intercompany_revenue_account: str = "40900",
                 intercompany_cost_account: str = "50900") -> None:
        super().__init__(client, revenue_account=revenue_account, payment_journal=payment_journal,
                         payment_account=payment_account, expense_journal=expense_journal,
                         expense_account=expense_account, expense_balancing_account=expense_balancing_account)
        self.intercompany_accounts = {"receivable": intercompany_revenue_account,
                                      "payable": intercompany_cost_account}
        self._intercompany = asyncio.Lock()  # one side at a time: the lookup before the write stays true

    # provided by BusinessCentralErp
    async def _patch(self, entity_set: str, record: Record, body: Record) -> Record:
        raise NotImplementedError

    async def upsert_intercompany_charge(self, external_id: str,
                                         data: IntercompanyChargeUpsert) -> tuple[IntercompanyCharge, bool]:
        await self._require_entity(data.legal_entity_id)
        kind = document_of(data.side)
        async with self._intercompany:
            record = await self.index.find(INTERCOMPANY, external_id)
            created = record is None
            document: Record | None = None
            if record is not None:
                document = await self._document_of(kind, record)
            if document is None or document.get("status") == "Draft":
                day = await self._period_open(data.period)
                party = await self._counterparty(kind, data.counterparty)
                header = charge_header(data, party_id=party, day=day, external_id=external_id,
                                       company_currency=(await self.entity()).currency)
                if document is None:
                    document = await self._find_document(kind, header)
                if document is None:
                    document = await self.client.create(await self.client.url(kind.entity_set), header)
                else:
                    document = await self._patch(kind.entity_set, document, header)
                if record is None:  # else lines and record went in together: only the posting is left
                    await self._write_lines(kind, external_id, data, document)
                await self._post(kind, str(document["id"]))
            record = await self.index.find(INTERCOMPANY, external_id)
            charge = await self._charge(record) if record is not None else None
            if charge is None:
                raise _unreadable(f"Business Central holds no posted document of intercompany {external_id}.")
            return charge, created

    async def _document_of(self, kind: Document, record: Record) -> Record | None:
        try:
            return await self.client.get(await self.client.url(f"{kind.entity_set}({record['targetId']})"))
        except VendorRejected as exc:
            if exc.status == 404:
                return None
            raise

    async def _find_document(self, kind: Document, header: Record) -> Record | None:
        """A document of this reference and party, created by a call whose answer was lost: adopted."""
        return await self.client.find(await self.client.url(kind.entity_set), " and ".join((
            f"{kind.reference_field} eq {odata_string(str(header[kind.reference_field]))}",
            f"{kind.party_field} eq {header[kind.party_field]}")))

    async def _counterparty(self, kind: Document, code: str) -> str:
        """The id of the customer or vendor standing for entity ``code``, created on first use."""
        url = await self.client.url(kind.party_set)
        number = f"number eq {odata_string(counterparty_number(code))}"
        party = await self.client.find(url, number)
        if party is None:
            try:
                party = await self.client.create(url, {"number": counterparty_number(code),
                                                       "displayName": f"Intercompany {code}"})
            except VendorRejected as exc:  # created meanwhile, or by an attempt whose answer was lost
                party = await self.client.find(url, number) if exc.code == EXISTS else None
                if party is None:
                    raise
        return str(party["id"])

    async def _project_ids(self, data: IntercompanyChargeUpsert) -> dict[str, str]:
        """{project external id: Business Central project id} of the lines' projects this company knows."""
        found = {}
        for project in sorted({line.project_external_id for line in data.lines}):
            index = await self.index.find("project", project)
            if index is not None and index.get("targetId"):
                found[project] = str(index["targetId"])
        return found

    async def _write_lines(self, kind: Document, external_id: str, data: IntercompanyChargeUpsert,
                           document: Record) -> None:
        """Lines a user left on the adopted draft out, the charge's lines in and psconnect's record written: one
        transaction."""
        company = await self.client.company()
        base = f"companies({company})/{kind.entity_set}({document['id']})/{kind.lines_set}"
        old, _ = await self.client.list_page(f"{self.client.root}{API_PATH}/{base}")
        account = self.intercompany_accounts[data.side]
        requests: list[Record] = [{"id": f"d{i}", "method": "DELETE", "url": f"{base}({line['id']})",
                                   "headers": {"If-Match": str(line["@odata.etag"])}} for i, line in enumerate(old)]
        requests += [{"id": f"l{i}", "method": "POST", "url": base, "headers": _JSON,
                      "body": charge_line(line, side=data.side, account_number=account, sequence=10000 * (i + 1))}
                     for i, line in enumerate(data.lines)]
        meta = charge_meta(data, await self._project_ids(data) if data.side == "payable" else {})
        body = {"recordType": INTERCOMPANY, "recordKey": external_id, "targetId": str(document["id"]),
                "parentKey": data.period, "groupKey": data.counterparty,
                "recordDate": str(document.get("postingDate") or ""), "data": msgspec.json.encode(meta).decode()}
        records = f"{self.client.root}{EXTENSION_PATH}/companies({company})/{RECORDS}"
        requests.append({"id": "x", "method": "POST", "url": records, "headers": _JSON, "body": body})
        if len(requests) > 100:
            raise ProblemError(422, "validation-error", "Validation failed", "Business Central writes at most 100 "
                               f"requests in one transaction; the draft {kind.entity_set}({document['id']}) holds "
                               f"{len(old)} lines to replace besides the charge's {len(data.lines)}.",
                               code="validation_failed")
        answers = await self.client.batch(requests)
        errors = [a for a in answers if int(a.get("status", 500)) >= 400 and int(a.get("status", 500)) != 424]
        if errors:
            error = (errors[0].get("body") or {}).get("error", {})
            raise VendorRejected("businesscentral", f"{error.get('code')}: {error.get('message')}",
                                 status=int(errors[0]["status"]), code=error.get("code"))

    async def _post(self, kind: Document, document_id: str) -> None:
        try:
            await self.client.action(await self.client.url(f"{kind.entity_set}({document_id})/Microsoft.NAV.post"))
        except VendorRejected as exc:
            if "allowed posting dates" in str(exc):
                raise unprocessable("period_closed", f"Business Central refused the posting date: {exc}",
                                    "Accounting period closed") from exc
            raise

    async def _charge(self, record: Record) -> IntercompanyCharge | None:
        """The side as Business Central holds it; None while its document is a draft (not yet recorded: the
        call that wrote it failed before posting, and its retry posts it)."""
        entity = await self.entity()
        try:
            kind = document_of(meta_of(record).side)
            url = await self.client.url(f"{kind.entity_set}({record['targetId']})")
            document = await self.client.get(url)
            if document.get("status") == "Draft":
                return None
            lines = [line async for line in self.client.iter_all(f"{url}/{kind.lines_set}")]
            return charge_from_records(record, document, lines, legal_entity_id=entity.id,
                                       company_currency=entity.currency)
        except (MappingError, KeyError) as exc:
            raise _unreadable(str(exc)) from exc

    async def list_intercompany_charges(self, period: str | None, counterparty: str | None, limit: int,
                                        cursor: str | None) -> Page[IntercompanyCharge]:
        terms = [f"recordType eq '{INTERCOMPANY}'"]
        if period is not None:
            terms.append(f"parentKey eq {odata_string(period)}")
        if counterparty is not None:
            terms.append(f"groupKey eq {odata_string(counterparty)}")
        records, following = await self._page(await self.index.url(), " and ".join(terms), limit, cursor,
                                              "intercompany")
        items = await asyncio.gather(*(self._charge(r) for r in records))
        return Page(items=[i for i in items if i is not None], next_cursor=following)

