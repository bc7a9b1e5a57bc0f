"""The simulator's companies and entity sets, with Business Central's business rules and errors.

Supported ``$filter`` forms: comparisons ``field eq|ne|ge|le|gt|lt value`` (a quoted string, a GUID, a
number, a date, an instant such as ``2026-11-20T10:00:00.123Z``, ``true``/``false``) joined by ``and``.
Anything else is 400 ``BadRequest_InvalidFilter`` rather than a silently wrong answer. Instants compare as
instants, not as text.

Every record carries ``lastModifiedDateTime`` (UTC, milliseconds, as Business Central writes it). A sales
document's stamp is at least a second past the previous document stamp, so every change of a document —
its lines, posting, a payment or credit applied to it — is seen by a status poll that asks for changes from
one second after the latest stamp it holds (Business Central itself stamps at wall-clock milliseconds).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from system_apis._internal.instants import utc_text

__all__ = ["ENTITY_SETS", "JOURNAL_SETS", "JOURNAL_TEMPLATES", "LINE_SETS", "BcError", "EntityStore", "etag_of",
           "instant", "new_id"]

Record = dict[str, Any]
ENTITY_SETS: Final = frozenset({"customers", "projects", "employees", "timeRegistrationEntries", "salesInvoices",
                                "salesCreditMemos", "accountingPeriods", "companyInformation", "psconnectRecords",
                                "customerPaymentJournals", "currencyExchangeRates", "journals",
                                "accounts", "generalLedgerEntries", "vendors", "purchaseInvoices"})
LINE_SETS: Final = {"salesInvoices": "salesInvoiceLines", "salesCreditMemos": "salesCreditMemoLines",
                    "purchaseInvoices": "purchaseInvoiceLines"}
_PARTY: Final = {"salesInvoices": ("customerId", "customers"), "salesCreditMemos": ("customerId", "customers"),
                 "purchaseInvoices": ("vendorId", "vendors")}
"""The party field of each document set and the entity set it names (a vendor for a purchase document)."""
JOURNAL_SETS: Final = {"customerPaymentJournals": "customerPayments", "journals": "journalLines"}
"""Journals and their lines (kept like document lines, under the journal's id)."""
JOURNAL_TEMPLATES: Final = {"customerPaymentJournals": "CASHRCPT", "journals": "GENERAL"}
"""The journal template each API entity set's batches belong to (named in Business Central's errors)."""
READ_ONLY: Final = frozenset({"accountingPeriods", "companyInformation", "accounts", "generalLedgerEntries"})
_COMPUTED: Final = frozenset({"status", "remainingAmount", "totalAmountExcludingTax", "totalTaxAmount",
                              "totalAmountIncludingTax", "lastModifiedDateTime"})
"""Sales document fields Business Central computes: a request that writes one is refused."""
_TERM: Final = re.compile(r"\s*(\w+)\s+(eq|ne|ge|le|gt|lt)\s+('(?:[^']|'')*'|[\w.:+-]+)\s*$")
_NUMBER_PREFIX: Final = {"customers": "C", "projects": "J", "employees": "E", "salesInvoices": "S-INV",
                         "salesCreditMemos": "S-CR", "vendors": "V", "purchaseInvoices": "P-INV"}
_INSTANT: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
_UNIQUE: Final = {"psconnectRecords": ("recordType", "recordKey"), **dict.fromkeys(_NUMBER_PREFIX, ("number",))}
"""The primary key of the table behind an entity set, compared as `eq` compares (case-insensitively). Indexed, as
Business Central's own tables are: an insert's duplicate check and a `$filter` naming the whole key find the
record without a scan, which made a month of posting quadratic in the simulator alone."""


class BcError(Exception):
    """Rendered as Business Central's ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def new_id() -> str:
    return str(uuid.uuid4())


def etag_of(version: int) -> str:
    return 'W/"' + base64.b64encode(f"{version};".encode()).decode() + '"'


def instant(moment: dt.datetime) -> str:
    """An Edm.DateTimeOffset as Business Central writes it: UTC, milliseconds, ``Z``."""
    return f"{utc_text(moment, 'milliseconds')}Z"


def _value(token: str) -> Any:
    if token.startswith("'"):
        return token[1:-1].replace("''", "'")
    if token in ("true", "false"):
        return token == "true"
    return token


def parse_filter(text: str | None) -> list[tuple[str, str, Any]]:
    if not text:
        return []
    terms = []
    for part in re.split(r"\s+and\s+", text.strip()):
        match = _TERM.match(part)
        if not match:
            raise BcError(400, "BadRequest_InvalidFilter", f"The filter expression '{text}' is not supported.")
        terms.append((match[1], match[2], _value(match[3])))
    return terms


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if isinstance(actual, str) and isinstance(expected, str) and _INSTANT.match(expected) and _INSTANT.match(actual):
        try:
            moments = dt.datetime.fromisoformat(actual), dt.datetime.fromisoformat(expected)
        except ValueError:
            raise BcError(400, "BadRequest_InvalidFilter", f"'{expected}' is not a valid instant.") from None
        return {"eq": moments[0] == moments[1], "ne": moments[0] != moments[1], "ge": moments[0] >= moments[1],
                "le": moments[0] <= moments[1], "gt": moments[0] > moments[1], "lt": moments[0] < moments[1]}[op]
    if isinstance(actual, bool) or isinstance(expected, bool):
        left, right = str(actual).lower(), str(expected).lower()
    elif isinstance(actual, (int, Decimal)) and not isinstance(expected, (int, Decimal)):
        try:
            left, right = Decimal(actual), Decimal(str(expected))  # type: ignore[assignment]
        except ArithmeticError:
            return False
    else:
        left, right = str(actual if actual is not None else ""), str(expected)
        if op in ("eq", "ne"):
            left, right = left.lower(), right.lower()  # BC compares GUIDs and codes case-insensitively
    return {"eq": left == right, "ne": left != right, "ge": left >= right, "le": left <= right,
            "gt": left > right, "lt": left < right}[op]


def matches(record: Record, terms: list[tuple[str, str, Any]]) -> bool:
    return all(_compare(record.get(field), op, value) for field, op, value in terms)


def _key(name: str, record: Record) -> tuple[str, ...] | None:
    fields = _UNIQUE.get(name)
    return None if fields is None else tuple(str(record.get(f) or "").lower() for f in fields)


class EntityStore:
    """Every company's entity sets (``records[company][set][id]``) and document lines."""

    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self.clock = clock
        self.companies: dict[str, Record] = {}
        self.records: dict[str, dict[str, dict[str, Record]]] = {}
        self.lines: dict[str, dict[str, dict[str, Record]]] = {}
        self._version = 0
        self._numbers: dict[tuple[str, str], int] = {}
        self._last_document: dt.datetime | None = None
        self._ids: dict[tuple[str, str, tuple[str, ...]], str] = {}
        """(company, entity set, `_UNIQUE` key) -> record id"""

    # ------------------------------------------------------------------ plumbing

    def add_company(self, company: Record) -> None:
        self.companies[company["id"]] = company
        self.records[company["id"]] = {name: {} for name in ENTITY_SETS}
        self.lines[company["id"]] = {}

    def company(self, company_id: str) -> dict[str, dict[str, Record]]:
        if company_id.lower() not in self.records:
            raise BcError(404, "BadRequest_NotFound", "The company does not exist.")
        return self.records[company_id.lower()]

    def entity_set(self, company_id: str, name: str) -> dict[str, Record]:
        sets = self.company(company_id)
        if name not in sets:
            raise BcError(404, "BadRequest_NotFound", f"Resource not found for the segment '{name}'.")
        return sets[name]

    def find(self, company_id: str, name: str, ident: str) -> Record:
        record = self.entity_set(company_id, name).get(ident.lower())
        if record is None:
            raise BcError(404, "BadRequest_NotFound", f"The {name} record with id {ident} does not exist.")
        return record

    def candidates(self, company_id: str, name: str, terms: list[tuple[str, str, Any]]) -> list[Record]:
        """The set's records a filter of `terms` can match: the one the index finds when the terms name the set's
        whole key, else all of them."""
        entities = self.entity_set(company_id, name)
        fields = _UNIQUE.get(name)
        equal = {field: value for field, op, value in terms if op == "eq"}
        if fields is None or not all(f in equal for f in fields):
            return list(entities.values())
        ident = self._ids.get((company_id.lower(), name, tuple(str(equal[f]).lower() for f in fields)))
        return [] if ident is None else [entities[ident]]

    def restore(self, records: dict[str, dict[str, dict[str, Record]]],
                lines: dict[str, dict[str, dict[str, Record]]]) -> None:
        """Roll back to a snapshot (a transactional `$batch` that failed), the index with it."""
        self.records, self.lines = records, lines
        self._ids = {(company, name, key): record["id"] for company, sets in records.items()
                     for name, entities in sets.items() for record in entities.values()
                     if (key := _key(name, record)) is not None}

    def stamp(self, record: Record, *, document: bool = False) -> Record:
        """A new ETag and ``lastModifiedDateTime``; a sales document's at least a second past the last one's."""
        self._version += 1
        record["@odata.etag"] = etag_of(self._version)
        now = self.clock()
        if document:  # never before the last change to a sales document (a clock that steps back)
            if self._last_document is not None and now < self._last_document:
                now = self._last_document
            self._last_document = now
        record["lastModifiedDateTime"] = instant(now)
        return record

    def _number(self, company_id: str, name: str) -> str:
        key = (company_id, name)
        self._numbers[key] = self._numbers.get(key, 1000) + 1
        return f"{_NUMBER_PREFIX.get(name, 'N')}{self._numbers[key]}"

    def check_etag(self, record: Record, if_match: str | None) -> None:
        if not if_match:
            raise BcError(400, "BadRequest", "Could not validate the client concurrency token required by the "
                          "service. Please provide a valid token in the client request.")
        if if_match != "*" and if_match != record["@odata.etag"]:
            raise BcError(412, "Request_EntityChanged", "Another user has already changed the record.")

    # ------------------------------------------------------------------ writes

    def insert(self, company_id: str, name: str, body: Record, *, seeding: bool = False) -> Record:
        if name in READ_ONLY and not seeding:
            raise BcError(405, "BadRequest_MethodNotAllowed", f"'POST' requests for '{name}' are not allowed.")
        entities = self.entity_set(company_id, name)
        record = {k: v for k, v in body.items() if not k.startswith("@")}
        record["id"] = str(record.get("id") or new_id()).lower() if seeding else new_id()
        self._writable(name, body)
        self._validate(company_id, name, record, None)
        if name in _NUMBER_PREFIX and not record.get("number"):
            record["number"] = self._number(company_id, name)
        self._hold_key(company_id, name, record, None)
        self._defaults(company_id, name, record)
        entities[record["id"]] = self.stamp(record, document=name in LINE_SETS)
        if name in LINE_SETS or name in JOURNAL_SETS:
            self.lines[company_id][record["id"]] = {}
        if name in LINE_SETS:
            self._totals(company_id, name, record)
        return record

    @staticmethod
    def _writable(name: str, body: Record) -> None:
        if name in LINE_SETS:
            for field in sorted(_COMPUTED & set(body)):
                raise BcError(400, "BadRequest", f"The property '{field}' is read-only.")

    def update(self, company_id: str, name: str, ident: str, body: Record, if_match: str | None) -> Record:
        if name in READ_ONLY:
            raise BcError(405, "BadRequest_MethodNotAllowed", f"'PATCH' requests for '{name}' are not allowed.")
        record = self.find(company_id, name, ident)
        self.check_etag(record, if_match)
        if name in LINE_SETS and record.get("status") != "Draft":
            raise BcError(400, "Application_DialogException", f"Status must be equal to 'Draft' in {name}: "
                          f"No.={record.get('number')}. Current value is '{record.get('status')}'.")
        self._writable(name, body)
        changed = {**record, **{k: v for k, v in body.items() if not k.startswith("@") and k != "id"}}
        if name == "salesInvoices" and "invoiceDate" in body and "dueDate" not in body:
            changed["dueDate"] = changed["invoiceDate"]  # recalculated: the simulator's customers have no terms
        self._validate(company_id, name, changed, record)
        self._hold_key(company_id, name, changed, record)
        record.clear()
        record.update(changed)
        if name in LINE_SETS:
            self._totals(company_id, name, record)
        return self.stamp(record, document=name in LINE_SETS)

    def remove(self, company_id: str, name: str, ident: str, if_match: str | None) -> None:
        record = self.find(company_id, name, ident)
        self.check_etag(record, if_match)
        if name in LINE_SETS and record.get("status") != "Draft":
            raise BcError(400, "Application_DialogException", "You cannot delete a posted document.")
        del self.entity_set(company_id, name)[record["id"]]
        self.lines[company_id].pop(record["id"], None)
        if (key := _key(name, record)) is not None:
            self._ids.pop((company_id.lower(), name, key), None)

    def _hold_key(self, company_id: str, name: str, record: Record, before: Record | None) -> None:
        """Index `record` (replacing `before`) under its key; refused as Business Central refuses a duplicate."""
        key = _key(name, record)
        if key is None:
            return
        holder = self._ids.get((company_id.lower(), name, key))
        if holder is not None and holder != record["id"]:
            if name == "psconnectRecords":
                raise BcError(400, "Internal_EntityWithSameKeyExists", f"The record in table psconnect Record "
                              f"already exists. Identification fields and values: Record Type='{record['recordType']}'"
                              f",Record Key='{record['recordKey']}'")
            raise BcError(400, "Internal_EntityWithSameKeyExists", f"The record in table {name} already exists. "
                          f"Identification fields and values: No.='{record['number']}'")
        if before is not None:
            self._ids.pop((company_id.lower(), name, _key(name, before) or ()), None)
        self._ids[(company_id.lower(), name, key)] = record["id"]

    def _validate(self, company_id: str, name: str, record: Record, before: Record | None) -> None:
        sets = self.company(company_id)
        if name in ("customers", "vendors") and not record.get("displayName"):
            raise BcError(400, "BadRequest", "displayName must not be blank.")
        if name == "psconnectRecords" and not (record.get("recordType") and record.get("recordKey")):
            raise BcError(400, "BadRequest", "recordType and recordKey must not be blank.")
        if name in LINE_SETS:
            field, parties = _PARTY[name]
            party = sets[parties].get(str(record.get(field) or "").lower())
            if party is None:
                raise BcError(400, "BadRequest_NotFound", f"The {parties[:-1]} does not exist. Identification fields "
                              f"and values: Id='{record.get(field)}'")
            if before is None:
                record["status"] = "Draft"
        if name == "timeRegistrationEntries":
            employee = sets["employees"].get(str(record.get("employeeId") or "").lower())
            job = sets["projects"].get(str(record.get("jobId") or "").lower())
            if employee is None:
                raise BcError(400, "BadRequest_NotFound", f"The employee {record.get('employeeId')} does not exist.")
            if job is None:
                raise BcError(400, "BadRequest_NotFound", f"The project {record.get('jobId')} does not exist.")
            if employee.get("status") != "Active":
                raise BcError(400, "Application_DialogException",
                              f"Status must be equal to 'Active' in Employee: No.={employee.get('number')}.")
            if job.get("blocked"):
                raise BcError(400, "Application_DialogException",
                              f"Project {job.get('number')} is blocked; no time can be registered on it.")
            self.require_open(company_id, str(record.get("date") or ""))
            record.update(employeeNumber=employee.get("number"), jobNumber=job.get("number"), status="Open",
                          unitOfMeasureCode="HOUR", absence="")
            if before is None:
                record["lineNumber"] = 10000 * (len(sets[name]) + 1)

    def _defaults(self, company_id: str, name: str, record: Record) -> None:
        if name == "employees":
            record.setdefault("status", "Active")
            record["displayName"] = f"{record.get('givenName', '')} {record.get('surname', '')}".strip()
        if name == "salesInvoices":
            record.setdefault("dueDate", record.get("invoiceDate"))  # no payment terms: due on the invoice date
        if name in JOURNAL_SETS:
            if not record.get("code"):
                raise BcError(400, "BadRequest", "code must not be blank.")
            record["code"] = str(record["code"]).upper()
            if any(j["code"] == record["code"] for j in self.company(company_id)[name].values()):
                raise BcError(400, "Internal_EntityWithSameKeyExists", "The record in table Gen. Journal Batch "
                              "already exists. Identification fields and values: Journal Template Name="
                              f"'{JOURNAL_TEMPLATES[name]}',Name='{record['code']}'")
            record.setdefault("displayName", "")
            record.setdefault("balancingAccountNumber", "")
            if name == "journals":
                record.setdefault("templateDisplayName", JOURNAL_TEMPLATES[name])
        if name == "salesInvoices" or name == "salesCreditMemos":
            customer = self.company(company_id)["customers"][str(record["customerId"]).lower()]
            record.update(customerNumber=customer.get("number"), customerName=customer.get("displayName"))
        if name == "purchaseInvoices":
            vendor = self.company(company_id)["vendors"][str(record["vendorId"]).lower()]
            record.update(vendorNumber=vendor.get("number"), vendorName=vendor.get("displayName"))
            record.setdefault("vendorInvoiceNumber", "")
            record.setdefault("dueDate", record.get("invoiceDate"))

    def require_open(self, company_id: str, day: str) -> None:
        """BC refuses a posting date in a closed or date-locked accounting period."""
        periods = sorted(self.company(company_id)["accountingPeriods"].values(), key=lambda p: p["startingDate"])
        current = None
        for period in periods:
            if period["startingDate"] <= day[:10]:
                current = period
        if current is None or current.get("closed") or current.get("dateLocked"):
            raise BcError(400, "Application_DialogException",
                          f"Posting Date {day[:10]} is not within your range of allowed posting dates.")

    # ------------------------------------------------------------------ sales document lines

    def document_lines(self, company_id: str, name: str, document_id: str) -> dict[str, Record]:
        document = self.find(company_id, name, document_id)
        return self.lines[company_id][document["id"]]

    def add_line(self, company_id: str, name: str, document_id: str, body: Record) -> Record:
        document = self.find(company_id, name, document_id)
        if document.get("status") != "Draft":
            raise BcError(400, "Application_DialogException", "Status must be equal to 'Draft'.")
        lines = self.lines[company_id][document["id"]]
        line = {k: v for k, v in body.items() if not k.startswith("@")}
        line["id"] = new_id()
        line["documentId"] = document["id"]
        line.setdefault("sequence", 10000 * (len(lines) + 1))
        # a purchase line's price is its direct unit cost (API v2.0 ``directUnitCost``)
        quantity = Decimal(str(line.get("quantity", 0)))
        price = Decimal(str(line.get("directUnitCost" if name == "purchaseInvoices" else "unitPrice", 0)))
        line["amountExcludingTax"] = (quantity * price).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        line.update(totalTaxAmount=Decimal("0.00"), amountIncludingTax=line["amountExcludingTax"],
                    netAmount=line["amountExcludingTax"])
        lines[line["id"]] = self.stamp(line)
        self._totals(company_id, name, document)
        self.stamp(document, document=True)
        return line

    def line(self, company_id: str, name: str, parent_id: str, line_id: str) -> Record:
        line = self.document_lines(company_id, name, parent_id).get(line_id.strip("'").lower())
        if line is None:
            raise BcError(404, "BadRequest_NotFound", f"The line {line_id} does not exist.")
        return line

    def remove_line(self, company_id: str, name: str, document_id: str, line_id: str, if_match: str | None) -> None:
        """A document line (its document a draft) or a journal line."""
        document = self.find(company_id, name, document_id)
        line = self.line(company_id, name, document_id, line_id)
        self.check_etag(line, if_match)
        if name in LINE_SETS and document.get("status") != "Draft":
            raise BcError(400, "Application_DialogException", "Status must be equal to 'Draft'.")
        del self.lines[company_id][document["id"]][line["id"]]
        if name in LINE_SETS:
            self._totals(company_id, name, document)
            self.stamp(document, document=True)

    def _totals(self, company_id: str, name: str, document: Record) -> None:
        """A draft's totals; until posted its remaining amount is its total (nothing can be applied to it)."""
        lines = self.lines[company_id].get(document["id"], {})
        total = sum((Decimal(str(line["amountExcludingTax"])) for line in lines.values()), Decimal("0.00"))
        document.update(totalAmountExcludingTax=total, totalTaxAmount=Decimal("0.00"), totalAmountIncludingTax=total,
                        remainingAmount=total)

    def post_document(self, company_id: str, name: str, document_id: str) -> None:
        """``Microsoft.NAV.post``: a draft with lines, dated in an open period, becomes Open.

        Its whole amount is then open on the customer's ledger (``remainingAmount``). A credit memo that names
        an open invoice (``invoiceId``) is applied to it at once, as far as the invoice is still owed.
        """
        document = self.find(company_id, name, document_id)
        if document.get("status") != "Draft":
            raise BcError(400, "Application_DialogException", "The document has already been posted.")
        if not self.lines[company_id][document["id"]]:
            raise BcError(400, "Application_DialogException", "There is nothing to post.")
        self.require_open(company_id, str(document.get("postingDate") or ""))
        if name == "purchaseInvoices":
            self._unique_vendor_invoice(company_id, document)
        document.update(status="Open", remainingAmount=document["totalAmountIncludingTax"])
        if name == "salesCreditMemos" and document.get("invoiceId"):
            invoice = self.entity_set(company_id, "salesInvoices").get(str(document["invoiceId"]).lower())
            if invoice is not None and invoice.get("status") == "Open":
                left = Decimal(str(document["remainingAmount"])) - self.apply(invoice, document["remainingAmount"])
                document.update(remainingAmount=left, status="Open" if left > 0 else "Paid")
        self.stamp(document, document=True)

    def _unique_vendor_invoice(self, company_id: str, document: Record) -> None:
        """Business Central refuses to post a vendor's invoice number twice (the Purchases & Payables setup's
        "Ext. Doc. No. Mandatory" check against the vendor ledger)."""
        number = str(document.get("vendorInvoiceNumber") or "")
        if not number:
            raise BcError(400, "Application_DialogException", "Vendor Invoice No. must have a value in Purchase "
                          f"Header: Document Type=Invoice, No.={document.get('number')}.")
        for other in self.entity_set(company_id, "purchaseInvoices").values():
            if other["id"] != document["id"] and other.get("status") in ("Open", "Paid") and \
                    other.get("vendorId") == document.get("vendorId") and other.get("vendorInvoiceNumber") == number:
                raise BcError(400, "Application_DialogException", f"Purchase Invoice {number} already exists for "
                              f"this vendor.")

    def apply(self, invoice: Record, amount: Any) -> Decimal:
        """Close ``amount`` (at most what is open) of a posted invoice; Paid when nothing is left. The applied part."""
        remaining = Decimal(str(invoice["remainingAmount"]))
        applied = min(remaining, Decimal(str(amount)))
        invoice["remainingAmount"] = remaining - applied
        if invoice["remainingAmount"] <= 0:
            invoice["status"] = "Paid"
        self.stamp(invoice, document=True)
        return applied
