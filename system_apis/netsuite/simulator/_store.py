"""The NetSuite simulator's records: state, ``q`` filtering, upsert rules, rendering. No HTTP here.

Business rules reproduced because the provisioning process meets them:

- a customer or job naming an unknown subsidiary -> 400 ``INVALID_PARAMETER``;
- a job whose subsidiary differs from its customer's -> 400 ``USER_ERROR``;
- subsidiaries and accounting periods are read-only to the integration role -> 403
  ``INSUFFICIENT_PERMISSION``;
- an invoice or credit memo whose ``postingPeriod`` is closed or AR-locked -> 400 ``PERIOD_CLOSED``;
  one whose customer, job, period or ``createdFrom`` invoice is unknown -> 400 ``INVALID_KEY_OR_REF``.
  NetSuite computes a transaction's ``total`` from its lines; so does this store.
- invoice standing, customer payments, credits applied and currency rates: ``_receivables``;
  expense reports and expense categories: ``_expenses``; vendors, vendor bills, entities shared between
  subsidiaries and representing subsidiaries: ``_intercompany``. An invoice's ``job`` is optional (an
  intercompany receivable has none); its customer must serve its subsidiary (primary or shared).
- ``lastModifiedDate`` is stamped to the second, as NetSuite's: several changes may share a second, so a
  status poll resumes at the last stamp it saw, inclusive (and skips what it has seen unchanged).

``q`` supports conditions joined by ``AND``: ``<field> IS "<text>"``, ``<field> EQUAL <number>``
and ``<field> AFTER|BEFORE|ON_OR_AFTER|ON_OR_BEFORE "<date or instant>"``; a reference field
(``subsidiary``) compares its ``id``. Real NetSuite supports more operators; these are what the
adapter uses.
Docs: https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_1545222128.html
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import hashlib
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from system_apis.demo_delivery import EXPENSE_CATEGORIES, defect_expenses
from system_apis.demo_firm import DemoFirm
from system_apis.netsuite._billing_mapping import BATCH_RECORD
from system_apis.netsuite._expenses_mapping import EXPENSE_BATCH_RECORD, EXPENSE_REPORT
from system_apis.netsuite.mapping import (
    JOB_STATUSES,
    accounting_period_to_record,
    format_instant,
    legal_entity_to_subsidiary,
)
from system_apis.netsuite.simulator._errors import NsError
from system_apis.netsuite.simulator._expenses import ExpenseBook
from system_apis.netsuite.simulator._intercompany import RELATIONSHIPS, VENDOR_BILL, Intercompany
from system_apis.netsuite.simulator._receivables import Receivables
from system_apis.netsuite.simulator._seed import seed_delivery

__all__ = ["RECORD_TYPES", "NsError", "RecordStore"]

Record = dict[str, Any]

RECORD_TYPES: Final = ("subsidiary", "customer", "job", "accountingPeriod", "employee", "invoice", "creditMemo",
                        "customerPayment", "currencyRate", BATCH_RECORD, EXPENSE_REPORT, "expenseCategory",
                        EXPENSE_BATCH_RECORD, "vendor", VENDOR_BILL, *RELATIONSHIPS)
WRITABLE: Final = frozenset({"customer", "job", "employee", "invoice", "creditMemo", "customerPayment", BATCH_RECORD,
                             EXPENSE_REPORT, EXPENSE_BATCH_RECORD, "vendor", VENDOR_BILL, *RELATIONSHIPS})
ENTITIES: Final = frozenset({"customer", "job", "employee", "vendor"})
"""Entity records share one internal id sequence in NetSuite; transactions and others have their own."""
SUBLISTS: Final = {"customer": ("addressBook",), "job": ("projectTask",), "invoice": ("item",),
                   "creditMemo": ("item",), "customerPayment": ("apply",), EXPENSE_REPORT: ("expense",),
                   VENDOR_BILL: ("item",)}
REFERENCES: Final = {"subsidiary": "subsidiary", "parent": "customer", "custrecord_psc_subsidiary": "subsidiary",
                     "entity": "customer", "customer": "customer", "job": "job", "createdFrom": "invoice"}
_CONDITION = re.compile(r'^\s*(\w+)\s+(IS|EQUAL|AFTER|BEFORE|ON_OR_AFTER|ON_OR_BEFORE)\s+'
                        r'("(?:[^"\\]|\\.)*"|[-\d.]+)\s*$')


def _not_found(record_type: str, key: str) -> NsError:
    return NsError(404, "NONEXISTENT_ID",
                   f"The record instance does not exist. Provide a valid record instance ID ({record_type} {key}).")


def _expense_categories(firm: DemoFirm) -> list[str]:
    """The time system's categories and any other a seeded (defect) expense names."""
    names = list(EXPENSE_CATEGORIES)
    with contextlib.suppress(StopIteration, IndexError):  # a part of the firm without the defects' projects
        names += [e.category for e in defect_expenses(firm.projects, firm.workers)]
    return names


def _parse_q(q: str) -> list[tuple[str, str, str]]:
    conditions = []
    for part in re.split(r"\s+AND\s+", q.strip()):
        match = _CONDITION.match(part)
        if not match:
            raise NsError(400, "INVALID_PARAMETER", f"Invalid search query: {part!r}.", "q")
        field, op, raw = match.groups()
        value = raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw
        conditions.append((field, op, value))
    return conditions


def _matches(record: Record, field: str, op: str, value: str) -> bool:
    actual = record.get(field)
    if isinstance(actual, dict):
        actual = actual.get("id")
    if actual is None:
        return False
    if op == "IS":
        return str(actual) == value
    if op == "EQUAL":
        try:
            return Decimal(str(actual)) == Decimal(value)
        except InvalidOperation:
            return False
    text = str(actual)[: len(value)]
    return {"AFTER": text > value, "BEFORE": text < value, "ON_OR_AFTER": text >= value,
            "ON_OR_BEFORE": text <= value}[op]


class RecordStore:
    """Records by type and internal id; internal ids are sequences, as in NetSuite."""

    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self._clock = clock
        self.records: dict[str, dict[str, Record]] = {t: {} for t in RECORD_TYPES}
        self.by_eid: dict[str, dict[str, str]] = {t: {} for t in RECORD_TYPES}
        """External id -> internal id per type: lookups by eid must not scan 10,000 employees."""
        self.periods: dict[tuple[str, str], Record] = {}
        """(subsidiary id, ``YYYY-MM``) -> accountingPeriod, for period checks on every posted line."""
        self._next_entity = 1001  # customers, jobs and employees share NetSuite's entity id sequence
        self._next_other = 101
        self._stamps: dict[str, dt.datetime] = {}
        self.receivables = Receivables(self.records, self.periods, self.stamp)
        self.expenses = ExpenseBook(self.records, self.periods, self.by_eid)
        self.intercompany = Intercompany(self.records, self.periods)

    def stamp(self, record_type: str) -> str:
        """The next ``lastModifiedDate`` of a record type: the wall clock's second, never before the type's last."""
        now = max(self._clock().astimezone(dt.UTC).replace(microsecond=0),
                  self._stamps.get(record_type, dt.datetime.min.replace(tzinfo=dt.UTC)))
        self._stamps[record_type] = now
        return format_instant(now)

    def seed(self, firm: DemoFirm) -> None:
        stamp = format_instant(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        by_seed: dict[str, str] = {}
        for n, entity in enumerate(firm.legal_entities, start=1):
            sub = legal_entity_to_subsidiary(entity, str(n))
            sub.update(createdDate=stamp, lastModifiedDate=stamp)
            self.records["subsidiary"][sub["id"]] = sub
            by_seed[entity.id] = sub["id"]
        for period in firm.accounting_periods:
            internal = str(self._next_other)
            self._next_other += 1
            rec = accounting_period_to_record(period, internal, by_seed.get(period.legal_entity_id or ""))
            rec.update(createdDate=stamp, lastModifiedDate=stamp)
            self.records["accountingPeriod"][internal] = rec
            self.by_eid["accountingPeriod"][period.id] = internal
            if rec.get("custrecord_psc_subsidiary"):
                self.periods[(rec["custrecord_psc_subsidiary"]["id"], period.start_date.strftime("%Y-%m"))] = rec
        for sub in self.records["subsidiary"].values():
            self.by_eid["subsidiary"][sub["externalId"]] = sub["id"]
        for record_type, record in seed_delivery(firm, by_seed):
            record.update(createdDate=stamp, lastModifiedDate=stamp)
            self._insert(record_type, record)
        self.receivables.seed_rates((e.currency for e in firm.legal_entities), stamp)
        for category in ExpenseBook.category_records(_expense_categories(firm), stamp):
            self._insert("expenseCategory", category)

    def _insert(self, record_type: str, record: Record) -> str:
        if record_type in ENTITIES:
            internal = str(self._next_entity)
            self._next_entity += 1
        else:
            internal = str(self._next_other)
            self._next_other += 1
        record["id"] = internal
        self.records[record_type][internal] = record
        if record.get("externalId"):
            self.by_eid[record_type][str(record["externalId"])] = internal
        return internal

    def _table(self, record_type: str) -> dict[str, Record]:
        if record_type not in self.records:
            raise NsError(404, "INVALID_RCRD_TYPE", f"Record type '{record_type}' does not exist.")
        return self.records[record_type]

    def count(self, record_type: str, external_id: str | None) -> int:
        table = self.records.get(record_type, {})
        if external_id is None:
            return len(table)
        return sum(1 for r in table.values() if r.get("externalId") == external_id)

    def ids(self, record_type: str, q: str | None) -> list[str]:
        """Matching ids in a stable but arbitrary order: real NetSuite promises no order either."""
        conditions = _parse_q(q) if q else []
        found = [i for i, r in self._table(record_type).items()
                 if all(_matches(r, f, op, v) for f, op, v in conditions)]
        return sorted(found, key=lambda i: hashlib.sha1(f"{record_type}/{i}".encode()).hexdigest())

    def find(self, record_type: str, key: str) -> Record:
        table = self._table(record_type)
        if key.startswith("eid:"):
            internal = self.by_eid[record_type].get(key[4:])
            if internal is not None and internal in table:
                return table[internal]
        elif key in table:
            return table[key]
        raise _not_found(record_type, key)

    # ------------------------------------------------------------------ writes

    def upsert(self, record_type: str, external_id: str, body: Record, replace: set[str]) -> tuple[str, bool]:
        """PUT /{type}/eid:{id}: update the record with that external id or create it."""
        self._writable(record_type)
        if "id" in body:
            raise NsError(400, "USER_ERROR", "You cannot set internalId with upsert.", "id")
        try:
            existing = self.find(record_type, f"eid:{external_id}")
        except NsError:
            return self._create(record_type, {**body, "externalId": external_id}), True
        self._update(record_type, existing, {**body, "externalId": external_id}, replace)
        return str(existing["id"]), False

    def create(self, record_type: str, body: Record) -> str:
        """POST /{type}: always a new record; a duplicate external id is refused."""
        self._writable(record_type)
        eid = body.get("externalId")
        if eid and str(eid) in self.by_eid[record_type]:
            raise NsError(400, "USER_ERROR", f"A {record_type} record with external ID {eid} already exists.",
                          "externalId")
        return self._create(record_type, body)

    def patch(self, record_type: str, key: str, body: Record, replace: set[str]) -> str:
        self._writable(record_type)
        record = self.find(record_type, key)
        self._update(record_type, record, body, replace)
        return str(record["id"])

    def _writable(self, record_type: str) -> None:
        self._table(record_type)
        if record_type not in WRITABLE:
            raise NsError(403, "INSUFFICIENT_PERMISSION",
                          f"Permission Violation: you need the 'Edit' permission for {record_type} records.")

    def _create(self, record_type: str, body: Record) -> str:
        record = copy.deepcopy(body)
        for sub in SUBLISTS.get(record_type, ()):
            record[sub] = {"items": list((body.get(sub) or {}).get("items") or [])}
        if record_type == "job":
            status_id, status_name = JOB_STATUSES["pending"]
            record.setdefault("entityStatus", {"id": status_id, "refName": status_name})
        if record_type == "invoice":
            record.setdefault("approvalStatus", {"id": "1", "refName": "Pending Approval"})
        self._validate(record_type, record)
        now = self.stamp(record_type)
        record.update(createdDate=now, lastModifiedDate=now)
        internal = self._insert(record_type, record)
        self.receivables.settle(record_type, record)
        return internal

    def _update(self, record_type: str, record: Record, body: Record, replace: set[str]) -> None:
        merged = copy.deepcopy(record)
        for field, value in body.items():
            if field in SUBLISTS.get(record_type, ()):
                items = list((value or {}).get("items") or [])
                kept = [] if field in replace else list(merged.get(field, {}).get("items", []))
                merged[field] = {"items": kept + items}  # NetSuite appends lines unless told to replace
            else:
                merged[field] = copy.deepcopy(value)
        self._validate(record_type, merged)
        merged["lastModifiedDate"] = self.stamp(record_type)
        old_eid = record.get("externalId")
        record.clear()
        record.update(merged)
        if old_eid != record.get("externalId"):
            self.by_eid[record_type].pop(str(old_eid), None)
            if record.get("externalId"):
                self.by_eid[record_type][str(record["externalId"])] = str(record["id"])
        self.receivables.settle(record_type, record)

    def _validate(self, record_type: str, record: Record) -> None:
        if record_type in ("invoice", "creditMemo"):
            self._validate_transaction(record_type, record)
            if record_type == "invoice":
                self.receivables.check_invoice(record)
            return
        if record_type == "customerPayment":
            self.receivables.check_payment(record)
            return
        if record_type == "employee":
            self._reference(record, "subsidiary", "subsidiary")
            if not record.get("lastName") or not record.get("email"):
                raise NsError(400, "USER_ERROR", "Please enter value(s) for: Last Name, Email.", "lastName")
            return
        if record_type == BATCH_RECORD:
            self._reference(record, "custrecord_psc_tb_subsidiary", "subsidiary")
            return
        if record_type == EXPENSE_BATCH_RECORD:
            self._reference(record, "custrecord_psc_eb_subsidiary", "subsidiary")
            return
        if record_type == EXPENSE_REPORT:
            self.expenses.check_report(record)
            return
        if record_type == VENDOR_BILL:
            self.intercompany.check_bill(record)
            return
        if record_type in RELATIONSHIPS:
            self.intercompany.check_relationship(record_type, record)
            return
        if not record.get("companyName"):
            raise NsError(400, "USER_ERROR", "Please enter value(s) for: Company Name.", "companyName")
        subsidiary = self._reference(record, "subsidiary", "subsidiary")
        if record_type in ("customer", "vendor"):
            self.intercompany.check_entity(record_type, record)
        if record_type == "job":
            customer = self._reference(record, "parent", "customer")
            if str(customer["subsidiary"]["id"]) != str(subsidiary["id"]):
                raise NsError(400, "USER_ERROR", "The subsidiary of a project must be the subsidiary of its "
                              "customer.", "subsidiary")
            budget = record.get("custentity_psc_budget_amount")
            if budget not in (None, ""):
                try:
                    Decimal(str(budget))
                except InvalidOperation:
                    raise NsError(400, "INVALID_PARAMETER", f"Invalid number {budget!r}.",
                                  "custentity_psc_budget_amount") from None
            for field in ("startDate", "projectedEndDate"):
                value = record.get(field)
                if value:
                    try:
                        dt.date.fromisoformat(str(value))
                    except ValueError:
                        raise NsError(400, "INVALID_PARAMETER", f"Invalid date value {value!r}; expected "
                                      "yyyy-MM-dd (the account's date format).", field) from None

    def _validate_transaction(self, record_type: str, record: Record) -> None:
        """Transactions need known references and an open, AR-unlocked posting period; NetSuite sums the total."""
        subsidiary = self._reference(record, "subsidiary", "subsidiary")
        customer = self._reference(record, "entity", "customer", code="INVALID_KEY_OR_REF")
        job = self._reference(record, "job", "job", code="INVALID_KEY_OR_REF") if record.get("job") else None
        if ((job is not None and str(job["parent"]["id"]) != str(customer["id"]))
                or not self.intercompany.serves("customer", customer, str(subsidiary["id"]))):
            raise NsError(400, "USER_ERROR", "The project must belong to the customer and the customer to the "
                          "subsidiary of the transaction.", "job")
        period = self._reference(record, "postingPeriod", "accountingPeriod", code="INVALID_KEY_OR_REF")
        if str((period.get("custrecord_psc_subsidiary") or {}).get("id")) != str(subsidiary["id"]):
            raise NsError(400, "INVALID_FLD_VALUE", "The posting period is not a period of this subsidiary.",
                          "postingPeriod")
        if period.get("isClosed") or period.get("arLocked"):
            raise NsError(400, "PERIOD_CLOSED", f"The accounting period {period.get('periodName')} is closed or "
                          "locked for accounts receivable; choose an open period.", "postingPeriod")
        if record_type == "creditMemo":
            self._reference(record, "createdFrom", "invoice", code="INVALID_KEY_OR_REF")
        total = Decimal(0)
        for n, line in enumerate((record.get("item") or {}).get("items") or []):
            try:
                total += Decimal(str(line.get("amount")))
            except InvalidOperation:
                raise NsError(400, "INVALID_FLD_VALUE", f"Invalid amount on line {n + 1}.",
                              f"item[{n}].amount") from None
        if not (record.get("item") or {}).get("items"):
            raise NsError(400, "USER_ERROR", "You must enter at least one line item for this transaction.", "item")
        record["total"] = total

    def _reference(self, record: Record, field: str, target: str, *, code: str = "INVALID_PARAMETER") -> Record:
        ref = record.get(field)
        ident = ref.get("id") if isinstance(ref, dict) else None
        referenced = self.records[target].get(str(ident)) if ident is not None else None
        if referenced is None:
            raise NsError(400, code, f"Invalid value {ident!r} for the reference field {field}.", field)
        return referenced

    # ------------------------------------------------------------------ rendering

    def render(self, record_type: str, record: Record, *, expand: bool, root: str) -> Record:
        """A record as GET returns it: self links, referenced names, sublists as links unless expanded.

        A new top level over the stored record's values, not a deep copy (0.6 s of a profiled reconciliation of
        384 projects): what rendering adds goes into new dicts, never into the stored record, and every caller
        encodes the result at once."""
        href = f"{root}/{record_type}/{record['id']}"
        out = dict(record)
        out["links"] = [{"rel": "self", "href": href}]
        for field, target in REFERENCES.items():
            ref = out.get(field)
            if isinstance(ref, dict) and ref.get("id") is not None:
                named = self.records[target].get(str(ref["id"]))
                if named:
                    name = named.get("name") or named.get("companyName") or named.get("tranId")
                    out[field] = {**ref, "refName": name}
        for sub in SUBLISTS.get(record_type, ()):
            links = [{"rel": "self", "href": f"{href}/{sub}"}]
            items = (out.get(sub) or {}).get("items") or []
            out[sub] = ({"links": links, "items": items, "count": len(items), "hasMore": False, "offset": 0,
                         "totalResults": len(items)} if expand else {"links": links})
        return out
