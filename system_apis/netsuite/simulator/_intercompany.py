"""The NetSuite simulator's intercompany side: vendors, vendor bills, shared entities, representing subsidiaries.

What NetSuite OneWorld does and this reproduces (the record store calls in on every write):

- ``customer`` and ``vendor`` may name a ``representingSubsidiary`` (the subsidiary they stand for in
  intercompany transactions): a known subsidiary other than their primary ``subsidiary``, represented by one
  customer and one vendor at most (400 ``USER_ERROR`` otherwise).
- A multi-subsidiary entity is shared with more subsidiaries by ``customerSubsidiaryRelationship`` /
  ``vendorSubsidiaryRelationship`` records (``entity``, ``subsidiary``; POST only); a pair already related,
  the primary subsidiary included, is refused (400 ``USER_ERROR``). A transaction may name an entity in any
  subsidiary it serves.
- A ``vendorBill`` needs a vendor serving its subsidiary (400 ``INVALID_KEY_OR_REF`` on ``entity``), a posting
  period of that subsidiary neither closed nor locked for A/P (400 ``PERIOD_CLOSED``), a known currency, and at
  least one ``item`` line with an item and an amount; a line's ``customer`` (a job) must be of the bill's
  subsidiary. Negative lines are accepted (a reversal). NetSuite sums ``total``; ``status`` follows
  ``approvalStatus`` (1 Pending Approval, the default, 2 Approved -> Open).
- SuiteQL: the statements ``netsuite._queries`` builds for intercompany documents; rows carry every value as a
  string, and an invoice's item lines are credit-signed (negative quantity and ``foreignamount``), as the
  ledger holds them.

Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/article_159067444188.html,
https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/article_161521108061.html
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from system_apis.netsuite._queries import (
    IC_BILL_TYPE,
    IC_CHARGES_CONDITION,
    IC_CHARGES_ORDER,
    IC_CHARGES_SELECT,
    IC_INVOICE_TYPE,
    IC_LINES_END,
    IC_LINES_SELECT,
)
from system_apis.netsuite.mapping import CURRENCY_IDS
from system_apis.netsuite.simulator._errors import NsError

__all__ = ["RELATIONSHIPS", "VENDOR_BILL", "Intercompany"]

Record = dict[str, Any]
VENDOR_BILL: Final = "vendorBill"
RELATIONSHIPS: Final = {"customerSubsidiaryRelationship": "customer", "vendorSubsidiaryRelationship": "vendor"}
"""Relationship record type -> the entity type it shares."""
SERVICE_ITEMS: Final = frozenset({"501", "502", "503", "504", "505"})
"""The account's service items (billing kinds, and 505 the intercompany service item)."""
_IDS: Final = re.compile(r"^\d+(, \d+)*$")
_TYPES: Final = {"invoice": IC_INVOICE_TYPE, VENDOR_BILL: IC_BILL_TYPE}


def _ref(record: Record, field: str) -> str:
    ref = record.get(field)
    return str(ref.get("id")) if isinstance(ref, dict) and ref.get("id") is not None else ""


def _code(record: Record) -> str:
    ref = record.get("currency")
    if not isinstance(ref, dict):
        return ""
    return str(ref.get("refName") or {v: k for k, v in CURRENCY_IDS.items()}.get(str(ref.get("id"))) or "")


class Intercompany:
    """Rules and SuiteQL of intercompany entities and documents, over the store's record tables (shared)."""

    def __init__(self, records: dict[str, dict[str, Record]], periods: dict[tuple[str, str], Record]) -> None:
        self.records = records
        self.periods = periods

    # ------------------------------------------------------------------ entities

    def check_entity(self, record_type: str, record: Record) -> None:
        """A customer or vendor's ``representingSubsidiary`` (the store checked ``subsidiary`` already)."""
        represented = _ref(record, "representingSubsidiary")
        if not represented:
            return
        if represented not in self.records["subsidiary"]:
            raise NsError(400, "INVALID_KEY_OR_REF", f"Invalid representingSubsidiary reference key {represented!r}.",
                          "representingSubsidiary")
        if represented == _ref(record, "subsidiary"):
            raise NsError(400, "USER_ERROR", "A representing entity cannot have the subsidiary it represents as its "
                          "primary subsidiary.", "representingSubsidiary")
        for other in self.records[record_type].values():
            if other.get("id") != record.get("id") and _ref(other, "representingSubsidiary") == represented:
                raise NsError(400, "USER_ERROR", f"Subsidiary {represented} is already represented by {record_type} "
                              f"{other.get('entityId') or other.get('id')}.", "representingSubsidiary")

    def check_relationship(self, record_type: str, record: Record) -> None:
        entity_type = RELATIONSHIPS[record_type]
        entity = self.records[entity_type].get(_ref(record, "entity"))
        if entity is None:
            raise NsError(400, "INVALID_KEY_OR_REF", f"Invalid entity reference key {_ref(record, 'entity')!r}.",
                          "entity")
        subsidiary = _ref(record, "subsidiary")
        if subsidiary not in self.records["subsidiary"]:
            raise NsError(400, "INVALID_KEY_OR_REF", f"Invalid subsidiary reference key {subsidiary!r}.", "subsidiary")
        if self.serves(entity_type, entity, subsidiary, besides=str(record.get("id", ""))):
            raise NsError(400, "USER_ERROR", f"The {entity_type} is already assigned to subsidiary {subsidiary}.",
                          "subsidiary")

    def serves(self, entity_type: str, entity: Record, subsidiary: str, *, besides: str = "") -> bool:
        """Whether an entity may be named on a transaction of ``subsidiary`` (primary or shared)."""
        if _ref(entity, "subsidiary") == subsidiary:
            return True
        table = next(t for t, e in RELATIONSHIPS.items() if e == entity_type)
        return any(_ref(r, "entity") == str(entity["id"]) and _ref(r, "subsidiary") == subsidiary
                   and str(r["id"]) != besides for r in self.records[table].values())

    # ------------------------------------------------------------------ vendor bills

    def check_bill(self, bill: Record) -> None:
        """Refuse what NetSuite refuses of a vendor bill; fill in what it derives (total, status)."""
        subsidiary = _ref(bill, "subsidiary")
        if subsidiary not in self.records["subsidiary"]:
            raise NsError(400, "INVALID_PARAMETER", f"Invalid value {subsidiary!r} for the reference field "
                          "subsidiary.", "subsidiary")
        vendor = self.records["vendor"].get(_ref(bill, "entity"))
        if vendor is None or vendor.get("isInactive") or not self.serves("vendor", vendor, subsidiary):
            raise NsError(400, "INVALID_KEY_OR_REF", f"Invalid entity reference key {_ref(bill, 'entity')!r}: no "
                          "active vendor of this subsidiary.", "entity")
        period = self.records["accountingPeriod"].get(_ref(bill, "postingPeriod"))
        if period is None or _ref(period, "custrecord_psc_subsidiary") != subsidiary:
            raise NsError(400, "INVALID_KEY_OR_REF", "Invalid postingPeriod reference key for this subsidiary.",
                          "postingPeriod")
        if period.get("isClosed") or period.get("apLocked"):
            raise NsError(400, "PERIOD_CLOSED", f"The accounting period {period.get('periodName')} is closed or "
                          "locked for accounts payable; choose an open period.", "postingPeriod")
        if _code(bill) not in CURRENCY_IDS:
            raise NsError(400, "INVALID_KEY_OR_REF", "Invalid currency reference key.", "currency")
        lines = (bill.get("item") or {}).get("items") or []
        if not lines:
            raise NsError(400, "USER_ERROR", "You must enter at least one line item for this transaction.", "item")
        total = Decimal(0)
        for n, line in enumerate(lines):
            if _ref(line, "item") not in SERVICE_ITEMS:
                raise NsError(400, "INVALID_KEY_OR_REF", f"Invalid item reference key {_ref(line, 'item')!r}.",
                              f"item.items[{n}].item")
            if line.get("customer"):
                job = self.records["job"].get(_ref(line, "customer"))
                if job is None or _ref(job, "subsidiary") != subsidiary:
                    raise NsError(400, "INVALID_KEY_OR_REF", f"Invalid customer reference key "
                                  f"{_ref(line, 'customer')!r}: no project of this subsidiary.",
                                  f"item.items[{n}].customer")
            try:
                total += Decimal(str(line.get("amount")))
            except InvalidOperation:
                raise NsError(400, "INVALID_FLD_VALUE", f"Invalid amount on line {n + 1}.",
                              f"item.items[{n}].amount") from None
        approved = _ref(bill, "approvalStatus") == "2"
        bill.setdefault("approvalStatus", {"id": "1", "refName": "Pending Approval"})
        bill.update(total=total, status={"id": "A" if approved else "D",
                                         "refName": "Open" if approved else "Pending Approval"})

    # ------------------------------------------------------------------ SuiteQL

    def query(self, statement: str) -> list[Record] | None:
        """All rows of an intercompany statement, in order; None for a statement not about these."""
        if statement.startswith(IC_CHARGES_SELECT) and statement.endswith(IC_CHARGES_ORDER):
            return self._charges(statement[len(IC_CHARGES_SELECT):-len(IC_CHARGES_ORDER)])
        if statement.startswith(IC_LINES_SELECT) and statement.endswith(IC_LINES_END):
            ids = statement[len(IC_LINES_SELECT):-len(IC_LINES_END)]
            if not _IDS.match(ids):
                raise NsError(400, "INVALID_PARAMETER", f"Invalid search query near {ids!r}.", "q")
            return self._lines(set(ids.split(", ")))
        return None

    def _documents(self) -> list[tuple[str, Record]]:
        docs = [(t, r) for t in _TYPES for r in self.records[t].values() if r.get("custbody_psc_ic_side")]
        return sorted(docs, key=lambda d: int(d[1]["id"]))

    def _charges(self, where: str) -> list[Record]:
        wanted: dict[str, str] = {}
        for part in where.split(" AND "):
            match = IC_CHARGES_CONDITION.match(part.strip())
            if not match:
                raise NsError(400, "INVALID_PARAMETER", f"Invalid search query near {part!r}.", "q")
            for column, value in zip(("custbody_psc_ic_period", "custbody_psc_ic_counterparty", "id"),
                                     match.groups(), strict=True):
                if value is not None:
                    wanted[column] = value
        return [{"links": [], "id": r["id"], "externalid": r.get("externalId"), "type": _TYPES[t],
                 "side": r["custbody_psc_ic_side"], "counterparty": r.get("custbody_psc_ic_counterparty"),
                 "period": r.get("custbody_psc_ic_period"), "currency": _code(r), "subsidiary": _ref(r, "subsidiary")}
                for t, r in self._documents() if all(str(r.get(c)) == v for c, v in wanted.items())]

    def _lines(self, ids: set[str]) -> list[Record]:
        rows = []
        for record_type, doc in self._documents():
            if str(doc["id"]) not in ids:
                continue
            sign = Decimal(-1) if record_type == "invoice" else Decimal(1)  # revenue lines are credits
            for n, line in enumerate((doc.get("item") or {}).get("items") or [], start=1):
                rows.append({"links": [], "transaction": doc["id"], "id": str(n),
                             "linekey": line.get("custcol_psc_line_key"),
                             "project": line.get("custcol_psc_ic_project"),
                             "employee": line.get("custcol_psc_ic_employee"),
                             "linedate": line.get("custcol_psc_ic_date"),
                             "quantity": str(Decimal(str(line.get("quantity") or 0)) * sign),
                             "rate": str(line.get("rate")), "amount": str(Decimal(str(line.get("amount"))) * sign)})
        return rows
