"""The org's records in memory: the pse__ objects psconnect reads and writes, their lookups and roll-ups.

Objects, fields and behaviour follow Certinia's PSA data dictionary (see
`system_apis.certinia.mapping`); what Salesforce itself enforces is reproduced where an adapter
would notice: unknown fields (INVALID_FIELD), read-only fields (INVALID_FIELD_FOR_INSERT_UPDATE),
required fields (REQUIRED_FIELD_MISSING), roll-ups (pse__Bookings__c from approved budgets,
pse__Total_Hours__c from the days), and Certinia's rule that an approved timecard cannot change
(FIELD_CUSTOM_VALIDATION_EXCEPTION).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import itertools
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final

from system_apis._internal.force_soql import record_instant
from system_apis.certinia._expense_mapping import EXPENSE_FIELDS, EXPENSE_LIMIT_FIELDS, RECEIPT_LINK_FIELDS
from system_apis.certinia.mapping import (
    ASSIGNMENT_FIELDS,
    DAYS,
    EXTERNAL_ID_FIELD,
    MILESTONE_FIELDS,
    PROJECT_FIELDS,
    RATE_CARD_FIELDS,
    RESOURCE_FIELDS,
    TIMECARD_FIELDS,
)

__all__ = ["API_PATH", "ApiError", "Org", "Record", "salesforce_id"]

API_PATH: Final = "/services/data/v60.0"
Record = dict[str, Any]


def _own(fields: tuple[str, ...]) -> set[str]:
    return {f for f in fields if "." not in f}


_DAY_FIELDS: Final = {f"pse__{day}_Hours__c" for day in DAYS}
SCHEMA: Final[Mapping[str, frozenset[str]]] = {
    "Account": frozenset({"Id", "Name", EXTERNAL_ID_FIELD, "LastModifiedDate"}),
    "pse__Region__c": frozenset({"Id", "Name", EXTERNAL_ID_FIELD, "CurrencyIsoCode", "LastModifiedDate"}),
    "pse__Practice__c": frozenset({"Id", "Name", EXTERNAL_ID_FIELD, "LastModifiedDate"}),
    "pse__Proj__c": frozenset(_own(PROJECT_FIELDS) | {"LastModifiedDate"}),
    "pse__Budget__c": frozenset({"Id", "Name", EXTERNAL_ID_FIELD, "pse__Project__c", "pse__Type__c", "pse__Status__c",
                                 "pse__Approved__c", "pse__Include_In_Financials__c", "pse__Amount__c",
                                 "CurrencyIsoCode", "LastModifiedDate"}),
    "pse__Milestone__c": frozenset(_own(MILESTONE_FIELDS) | {"LastModifiedDate"}),
    "Contact": frozenset(_own(RESOURCE_FIELDS) | {"LastModifiedDate"}),
    "pse__Schedule__c": frozenset({"Id", "Name", "pse__Start_Date__c", "pse__End_Date__c", "pse__Scheduled_Hours__c",
                                   "LastModifiedDate"}),
    "pse__Assignment__c": frozenset(_own(ASSIGNMENT_FIELDS) | {"LastModifiedDate"}),
    "pse__Rate_Card__c": frozenset(_own(RATE_CARD_FIELDS) | {"LastModifiedDate"}),
    "pse__Timecard_Header__c": frozenset(_own(TIMECARD_FIELDS) | {"pse__Approved__c", "pse__Submitted__c",
                                                                  "pse__Audit_Notes__c"}),
    "pse__Expense_Report__c": frozenset({"Id", "Name", "pse__Resource__c", "pse__Project__c", "pse__Status__c",
                                         "pse__Approved__c", "pse__Submitted__c", "CurrencyIsoCode",
                                         "LastModifiedDate"}),
    "pse__Expense__c": frozenset(_own(EXPENSE_FIELDS) | {"pse__Assignment__c", "pse__Submitted__c",
                                                         "pse__Exclude_from_Billing__c"}),
    "pse__Expense_Limit_Rate__c": frozenset(_own(EXPENSE_LIMIT_FIELDS) | {
        "Name", "pse__Region__c", "pse__Rate_Unit__c", "pse__Cascading__c", "LastModifiedDate"}),
    # Salesforce Files: a ContentVersion's insert creates its ContentDocument, and with
    # FirstPublishLocationId the ContentDocumentLink to that record.
    "ContentVersion": frozenset({"Id", "Title", "PathOnClient", "VersionData", "ContentDocumentId",
                                 "FirstPublishLocationId", "LastModifiedDate"}),
    "ContentDocument": frozenset({"Id", "Title", "LatestPublishedVersionId", "LastModifiedDate"}),
    "ContentDocumentLink": frozenset(_own(RECEIPT_LINK_FIELDS) | {"ShareType", "Visibility"}),
}
RELATIONS: Final[Mapping[str, tuple[str, str]]] = {
    "pse__Account__r": ("pse__Account__c", "Account"),
    "pse__Project__r": ("pse__Project__c", "pse__Proj__c"),
    "pse__Resource__r": ("pse__Resource__c", "Contact"),
    "pse__Schedule__r": ("pse__Schedule__c", "pse__Schedule__c"),
    "pse__Assignment__r": ("pse__Assignment__c", "pse__Assignment__c"),
    "pse__Practice__r": ("pse__Practice__c", "pse__Practice__c"),
    "pse__Region__r": ("pse__Region__c", "pse__Region__c"),
    "pse__Expense_Report__r": ("pse__Expense_Report__c", "pse__Expense_Report__c"),
    "pse__Applied_Expense_Rate__r": ("pse__Applied_Expense_Rate__c", "pse__Expense_Limit_Rate__c"),
    "ContentDocument": ("ContentDocumentId", "ContentDocument"),
}
PREFIX: Final = {"Account": "001", "Contact": "003", "pse__Proj__c": "a0l", "pse__Milestone__c": "a0m",
                 "pse__Budget__c": "a0b", "pse__Assignment__c": "a0a", "pse__Schedule__c": "a0s",
                 "pse__Rate_Card__c": "a0r", "pse__Timecard_Header__c": "a0t", "pse__Practice__c": "a0p",
                 "pse__Region__c": "a0g", "pse__Expense_Report__c": "a0x", "pse__Expense__c": "a0e",
                 "pse__Expense_Limit_Rate__c": "a0y", "ContentVersion": "068", "ContentDocument": "069",
                 "ContentDocumentLink": "06A"}
READ_ONLY: Final = frozenset({"Id", "Name@Contact", "LastModifiedDate", "pse__Bookings__c", "pse__Total_Hours__c",
                              "pse__Approved__c@pse__Timecard_Header__c", "pse__Submitted__c",
                              "LatestPublishedVersionId", "ContentDocumentId@ContentVersion"})
REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "Account": ("Name",), "pse__Region__c": ("Name",), "pse__Practice__c": ("Name",), "pse__Proj__c": ("Name",),
    "pse__Budget__c": ("pse__Project__c", "pse__Amount__c"),
    "pse__Milestone__c": ("Name", "pse__Project__c", "pse__Target_Date__c"), "Contact": ("LastName",),
    "pse__Schedule__c": ("pse__Start_Date__c", "pse__End_Date__c"),
    "pse__Assignment__c": ("pse__Project__c", "pse__Resource__c", "pse__Schedule__c"),
    "pse__Rate_Card__c": ("pse__Role__c",),
    "pse__Timecard_Header__c": ("pse__Project__c", "pse__Resource__c", "pse__Start_Date__c", "pse__End_Date__c"),
    "pse__Expense_Report__c": ("Name", "pse__Resource__c"),
    "pse__Expense__c": ("pse__Expense_Report__c", "pse__Expense_Date__c", "pse__Amount__c"),
    "pse__Expense_Limit_Rate__c": ("pse__Type__c",),
    "ContentVersion": ("Title", "PathOnClient", "VersionData"),
    "ContentDocument": (), "ContentDocumentLink": ("LinkedEntityId", "ContentDocumentId"),
}
_BASE62: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def salesforce_id(prefix: str, number: int) -> str:
    """An 18-character id: key prefix, pod, counter and the case-checksum suffix.

    https://help.salesforce.com/s/articleView?id=000385008&type=1
    """
    digits = ""
    while True:
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
        if not number:
            break
    short = f"{prefix}Ca0{digits.rjust(9, '0')}"
    suffix = "".join(_CHECKSUM[sum(1 << i for i, ch in enumerate(short[c * 5:c * 5 + 5]) if "A" <= ch <= "Z")]
                     for c in range(3))
    return short + suffix


class ApiError(Exception):
    """Raise to answer with Salesforce's error list ``[{message, errorCode, fields}]``."""

    def __init__(self, status: int, code: str, message: str, *, fields: list[str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: list[dict[str, Any]] = [{"message": message, "errorCode": code, "fields": fields or []}]
        self.headers = headers or {}


def query_schema() -> dict[str, frozenset[str]]:
    """Every object's fields plus the parent fields its lookups reach (``pse__Project__r.Name``)."""
    out: dict[str, frozenset[str]] = {}
    for sobject, fields in SCHEMA.items():
        paths = {f"{rel}.{f}" for rel, (lookup, target) in RELATIONS.items() if lookup in fields
                 for f in SCHEMA[target]}
        out[sobject] = frozenset(fields | paths)
    return out


class Org:
    """The tables, and the rules Salesforce and Certinia apply on write."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.tables: dict[str, dict[str, Record]] = {name: {} for name in SCHEMA}
        self.blobs: dict[tuple[str, str], bytes] = {}
        """(ContentVersion id, field) -> the file's bytes; the record holds the URL SOQL answers for the field."""
        self._ids = itertools.count(1)

    def stamp(self) -> str:
        return record_instant(dt.datetime.fromtimestamp(self._clock(), dt.UTC))

    # --- reads -----------------------------------------------------------------------------------------

    def table(self, sobject: str) -> dict[str, Record]:
        if sobject not in self.tables:
            raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: sObject type '{sobject}' is "
                           "not supported.")
        return self.tables[sobject]

    def find(self, sobject: str, record_id: str) -> Record:
        table = self.table(sobject)
        record = table.get(record_id) if len(record_id) == 18 else next(
            (r for key, r in table.items() if key[:15] == record_id), None)
        if record is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return record

    def resolve(self, record: Mapping[str, Any], path: str) -> Any:
        relation, _, field = path.partition(".")
        lookup, target = RELATIONS[relation]
        parent = self.tables[target].get(str(record.get(lookup) or ""))
        return parent.get(field) if parent is not None else None

    def flat(self, record: Record, paths: set[str]) -> Record:
        """The record with the parent fields a WHERE clause names, for matching."""
        return {**record, **{p: self.resolve(record, p) for p in paths}} if paths else record

    def render(self, sobject: str, record: Mapping[str, Any], fields: list[str] | None = None) -> Record:
        shown = fields if fields is not None else sorted(SCHEMA[sobject])
        out: Record = {"attributes": {"type": sobject, "url": f"{API_PATH}/sobjects/{sobject}/{record['Id']}"}}
        for name in shown:
            if "." not in name:
                out[name] = record.get(name)
                continue
            relation, _, field = name.partition(".")
            lookup, target = RELATIONS[relation]
            parent = self.tables[target].get(str(record.get(lookup) or ""))
            if parent is None:
                out[relation] = None
                continue
            nested = out.get(relation) or {"attributes": {"type": target,
                                                          "url": f"{API_PATH}/sobjects/{target}/{parent['Id']}"}}
            nested[field] = parent.get(field)
            out[relation] = nested
        return out

    # --- writes ----------------------------------------------------------------------------------------

    def validate(self, sobject: str, body: Any, *, creating: bool) -> Record:
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        known = SCHEMA[sobject]
        for name in body:
            if name == "attributes":
                continue
            if name not in known:
                raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}",
                               fields=[name])
            if name in READ_ONLY or f"{name}@{sobject}" in READ_ONLY:
                raise ApiError(400, "INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update fields: {name}. "
                               "Please check the security settings of this field and verify that it is "
                               "read/write for your profile or permission set.", fields=[name])
            if name.endswith("__c") and name in {lookup for lookup, _ in RELATIONS.values()} and body[name]:
                target = next(t for lk, t in RELATIONS.values() if lk == name)
                if str(body[name]) not in self.tables[target]:
                    raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION", f"{name}: id value of incorrect type: "
                                   f"{body[name]}", fields=[name])
        fields = {k: v for k, v in body.items() if k != "attributes"}
        if creating:
            missing = [f for f in REQUIRED[sobject] if fields.get(f) in (None, "")]
            if missing:
                raise ApiError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                               fields=missing)
        return fields

    def insert(self, sobject: str, fields: Record, *, owned: bool = False) -> str:
        """Create a record; `owned` says the caller hands `fields` over (seeding), so no copy is made."""
        record_id = salesforce_id(PREFIX[sobject], next(self._ids))
        record: Record = dict.fromkeys(SCHEMA[sobject])
        record.update(fields if owned else copy.deepcopy(fields))
        record["Id"] = record_id
        self.tables[sobject][record_id] = record
        self.derive(sobject, record)
        return record_id

    def update(self, sobject: str, record: Record, fields: Record) -> None:
        if sobject == "pse__Timecard_Header__c" and record.get("pse__Status__c") == "Approved" \
                and any(record.get(k) != v for k, v in fields.items()):
            raise ApiError(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                           "This timecard has been approved and cannot be edited.")
        record.update(copy.deepcopy(fields))
        self.derive(sobject, record)

    def derive(self, sobject: str, record: Record) -> None:
        """What the platform and Certinia compute on save."""
        record["LastModifiedDate"] = self.stamp()
        if sobject == "Contact":
            record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)
        elif sobject == "pse__Timecard_Header__c":
            record["pse__Total_Hours__c"] = sum((Decimal(str(record.get(f) or 0)) for f in sorted(_DAY_FIELDS)),
                                                Decimal(0))
            record["pse__Approved__c"] = record.get("pse__Status__c") == "Approved"
            record["pse__Submitted__c"] = record.get("pse__Status__c") in ("Submitted", "Approved")
        elif sobject == "pse__Budget__c" and record.get("pse__Project__c") in self.tables["pse__Proj__c"]:
            self._bookings(str(record["pse__Project__c"]))
        elif sobject == "pse__Proj__c":
            self._bookings(str(record["Id"]))
        elif sobject in ("pse__Expense__c", "pse__Expense_Report__c"):
            record["pse__Submitted__c"] = record.get("pse__Status__c") in ("Submitted", "Approved")
            if sobject == "pse__Expense__c":
                record["Name"] = record.get("Name") or f"EX-{len(self.tables[sobject]):06d}"  # Expense Number
                self._mileage(record)
        elif sobject == "ContentVersion":
            self._publish(record)

    def _mileage(self, expense: Record) -> None:
        """Certinia prices a line with an applied rate as distance x rate (the amount entered is replaced)."""
        rate = self.tables["pse__Expense_Limit_Rate__c"].get(str(expense.get("pse__Applied_Expense_Rate__c") or ""))
        if rate is not None and rate.get("pse__Is_Rate__c") and expense.get("pse__Distance__c") is not None:
            expense["pse__Amount__c"] = (Decimal(str(expense["pse__Distance__c"])) *
                                         Decimal(str(rate.get("pse__Amount__c") or 0))).quantize(Decimal("0.01"))

    def _publish(self, version: Record) -> None:
        """A new file version: its bytes to `blobs`, its document created, and linked to FirstPublishLocationId.

        https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_contentversion.htm
        """
        data = version.get("VersionData")
        if isinstance(data, (bytes, str)) and not str(data).startswith(API_PATH):
            self.blobs[str(version["Id"]), "VersionData"] = base64.b64decode(data) if isinstance(data, str) \
                else data
            version["VersionData"] = f"{API_PATH}/sobjects/ContentVersion/{version['Id']}/VersionData"
        if version.get("ContentDocumentId"):
            return
        document = self.insert("ContentDocument", {"Title": version.get("Title"),
                                                   "LatestPublishedVersionId": version["Id"]})
        version["ContentDocumentId"] = document
        owner = version.get("FirstPublishLocationId")
        if owner:
            self.insert("ContentDocumentLink", {"LinkedEntityId": owner, "ContentDocumentId": document,
                                                "ShareType": "V", "Visibility": "AllUsers"})

    def _bookings(self, project_id: str) -> None:
        total = sum((Decimal(str(b.get("pse__Amount__c") or 0)) for b in self.tables["pse__Budget__c"].values()
                     if b.get("pse__Project__c") == project_id and b.get("pse__Approved__c")), Decimal(0))
        self.tables["pse__Proj__c"][project_id]["pse__Bookings__c"] = total
