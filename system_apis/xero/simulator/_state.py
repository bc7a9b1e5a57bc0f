"""The simulator's organisations (tenants): seeded records in Xero's wire shapes, and Xero's rules on them."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

from contracts.erp import LegalEntity
from system_apis.demo_firm import FX, demo_firm
from system_apis.xero._defaults import PAYMENT_ACCOUNT, tenant_id

__all__ = ["ACQUIRED", "Organisation", "Refused", "matches", "ms_date", "ms_instant", "read_date",
           "seed_organisation"]

ACQUIRED: Final = {
    "AU01": LegalEntity(id="LE-AU01", code="AU01", name="Meridian Advisory Pty Ltd", country="AU", currency="AUD",
                        tax_regime="uk_vat", tax_registration="ABN 51 824 753 556", requires_customer_tax_id=False),
}
"""The acquired Australian entity, used while the demo firm does not list it (helper D adds it there)."""
LOCK_DATE: Final = dt.date(2026, 8, 31)
"""Periods up to August 2026 are closed in the demo firm; Xero keeps that as the organisation's lock date."""
_WHERE: Final = re.compile(r'^\s*(\w+)(==|\.StartsWith\()\s*"([^"]*)"\)?\s*$')
_WHERE_DATE: Final = re.compile(r"^\s*(\w+)\s*(>=|<=|>|<|==)\s*DateTime\((\d{4}),\s*(\d{1,2}),\s*(\d{1,2})\)\s*$")
_MS: Final = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Refused(Exception):
    """A Xero validation refusal (answered 400 with the Accounting or Projects error body)."""


def ms_date(day: dt.date) -> str:
    """Xero's Accounting date format, ``/Date(ms+0000)/``."""
    instant = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return f"/Date({int(instant.timestamp() * 1000)}+0000)/"


def ms_instant(value: object) -> dt.datetime:
    """An Accounting ``/Date(ms+0000)/`` as a UTC instant (milliseconds kept)."""
    found = _MS.match(str(value or ""))
    if found is None:
        raise Refused(f"{value!r} is not a Xero date")
    return _EPOCH + dt.timedelta(milliseconds=int(found.group(1)))


def read_date(value: object) -> dt.date:
    """A date as a request sends it (``YYYY-MM-DD``, maybe with a time) or as a stored record holds it (ms)."""
    text = str(value or "")
    if _MS.match(text):
        return ms_instant(text).date()
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError as exc:
        raise Refused(f"{text!r} is not a date") from exc


def matches(record: dict[str, Any], where: str | None) -> bool:
    """Xero's ``where`` filter, the part used here: ``Field=="x"``, ``Field.StartsWith("x")`` and
    ``Date>=DateTime(2026,10,01)`` (also ``<=``, ``>``, ``<``, ``==``) joined by AND, and such conjunctions joined
    by OR (https://developer.xero.com/documentation/api/accounting/requests-and-responses#retrieving-filtered-records).
    """
    if not where:
        return True
    return any(all(_clause(record, c) for c in alternative.split(" AND ")) for alternative in where.split(" OR "))


def _clause(record: dict[str, Any], clause: str) -> bool:
    dated = _WHERE_DATE.match(clause)
    if dated is not None:
        field, op, year, month, day = dated.groups()
        if not record.get(field):
            return False
        held, wanted = read_date(record[field]), dt.date(int(year), int(month), int(day))
        return {">=": held >= wanted, "<=": held <= wanted, ">": held > wanted, "<": held < wanted,
                "==": held == wanted}[op]
    found = _WHERE.match(clause)
    if found is None:
        raise Refused(f"unsupported where clause {clause!r}")
    field, op, value = found.groups()
    actual = str(record.get(field) or "")
    return actual == value if op == "==" else actual.startswith(value)


class Organisation:
    """One tenant's books."""

    def __init__(self, entity: LegalEntity, clock: Callable[[], float] = time.time) -> None:
        self.code = entity.code
        self._clock = clock
        self._stamped = 0
        """The last change's ``UpdatedDateUTC`` in ms (see `touch`)."""
        self.tenant = tenant_id(entity.code)
        self.record: dict[str, Any] = {
            "OrganisationID": self.tenant, "Name": entity.name, "LegalName": entity.name, "PaysTax": True,
            "Version": entity.country if entity.country in ("AU", "NZ", "US") else "GLOBAL",
            "OrganisationType": "COMPANY", "BaseCurrency": entity.currency, "CountryCode": entity.country,
            "IsDemoCompany": False, "OrganisationStatus": "ACTIVE", "TaxNumber": entity.tax_registration,
            "FinancialYearEndDay": 31, "FinancialYearEndMonth": 12, "PeriodLockDate": ms_date(LOCK_DATE),
            "Timezone": "AUSEASTERNSTANDARDTIME", "OrganisationEntityType": "COMPANY",
            "ShortCode": f"!{entity.code}", "Class": "STANDARD", "Edition": "BUSINESS"}
        self.lock_date = LOCK_DATE
        self.currency = entity.currency
        self.currencies: dict[str, str] = {entity.currency: entity.currency}
        """The currencies added to the organisation (``/Currencies``), code -> description; the base one first."""
        self.contacts: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.credit_notes: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.accounts: list[dict[str, Any]] = [
            {"AccountID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.tenant}/{code}")), "Code": code, "Name": name,
             "Type": "REVENUE", "Status": "ACTIVE", "TaxType": "OUTPUT", "Class": "REVENUE"}
            for code, name in (("4000", "Consulting fees (time)"), ("4010", "Milestone fees"),
                               ("4020", "Recharged expenses"))]
        self.accounts += [  # the expense accounts of Xero's default chart that employee expenses are coded to
            {"AccountID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.tenant}/{code}")), "Code": code, "Name": name,
             "Type": "EXPENSE", "Status": "ACTIVE", "TaxType": "INPUT", "Class": "EXPENSE"}
            for code, name in (("420", "Entertainment"), ("429", "General Expenses"),
                               ("449", "Motor Vehicle Expenses"), ("485", "Subscriptions"),
                               ("493", "Travel - National"), ("494", "Travel - International"))]
        self.accounts += [  # where intercompany charges are coded: recharged consultants' revenue and cost
            {"AccountID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.tenant}/{code}")), "Code": code, "Name": name,
             "Type": kind, "Status": "ACTIVE", "TaxType": "NONE",
             "Class": "REVENUE" if kind == "REVENUE" else "EXPENSE"}
            for code, name, kind in (("4030", "Intercompany recharges", "REVENUE"),
                                     ("5030", "Intercompany consultant costs", "DIRECTCOSTS"))]
        self.accounts.append({  # where customer payments land (Xero's default chart names its bank account 090)
            "AccountID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.tenant}/{PAYMENT_ACCOUNT}")),
            "Code": PAYMENT_ACCOUNT, "Name": "Business Bank Account", "Type": "BANK", "BankAccountType": "BANK",
            "BankAccountNumber": "062-000 1234 5678", "CurrencyCode": entity.currency, "Status": "ACTIVE",
            "Class": "ASSET", "EnablePaymentsToAccount": False})
        self.tracking: dict[str, Any] = {
            "TrackingCategoryID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.tenant}/tracking")),
            "Name": "Project", "Status": "ACTIVE", "Options": []}
        self.users = [{"userId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.tenant}/user")),
                       "name": "psconnect integration", "email": "integration@meridian.example"}]
        self.projects: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, dict[str, Any]]] = {}
        self.time: dict[str, dict[str, dict[str, Any]]] = {}
        self._numbers = itertools.count(1)

    def next_id(self) -> str:
        return str(uuid.uuid4())

    def touch(self) -> str:
        """The ``UpdatedDateUTC`` of a change to an invoice, credit note or payment made now, in ms, after the
        tenant's previous such change (a millisecond on when both fall in one), so a change always shows.
        ``If-Modified-Since`` is read to the second, so a poller resumes at the last change it saw, inclusive."""
        self._stamped = max(int(self._clock() * 1000), self._stamped + 1)
        return f"/Date({self._stamped}+0000)/"

    def now(self) -> str:
        """The ``UpdatedDateUTC`` of a change to a record psconnect never polls for (a contact): the clock's."""
        return f"/Date({int(self._clock() * 1000)}+0000)/"

    def account(self, code: str) -> dict[str, Any] | None:
        return next((a for a in self.accounts if a["Code"] == code and a["Status"] == "ACTIVE"), None)

    def currency_rate(self, code: str) -> Decimal:
        """The day rate Xero applies to a document in `code` that names none (units of `code` per unit of the base
        currency, as Xero's ``CurrencyRate``): the demo firm's table here, XE.com's at Xero."""
        if code == self.currency:
            return Decimal(1)
        if code not in FX or self.currency not in FX:
            raise Refused(f"No exchange rate for {code}.")
        return (FX[code] / FX[self.currency]).quantize(Decimal("0.000001"))

    def option_names(self) -> set[str]:
        return {str(o["Name"]) for o in self.tracking["Options"]}

    def check_date(self, value: str) -> dt.date:
        try:
            day = dt.date.fromisoformat(value[:10])
        except ValueError as exc:
            raise Refused(f"{value!r} is not a date") from exc
        if day <= self.lock_date:
            raise Refused(f"The document date cannot be before the period lock date of {self.lock_date:%d %b %Y}")
        return day

    def check_lines(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        codes = {a["Code"] for a in self.accounts if a["Type"] != "BANK"}  # a sales line is never coded to a bank
        out = []
        for line in lines:
            if line.get("AccountCode") not in codes:
                raise Refused(f"Account code '{line.get('AccountCode')}' is not a valid code for this document.")
            for tracking in line.get("Tracking") or []:
                if tracking.get("Name") != "Project" or tracking.get("Option") not in self.option_names():
                    raise Refused(f"The TrackingOption '{tracking.get('Option')}' does not exist.")
            quantity = Decimal(str(line.get("Quantity", 1)))
            unit = Decimal(str(line.get("UnitAmount", 0)))
            amount = Decimal(str(line.get("LineAmount", quantity * unit)))
            out.append({**line, "LineItemID": str(uuid.uuid4()), "Quantity": quantity, "UnitAmount": unit,
                        "LineAmount": amount, "TaxAmount": Decimal(0),
                        "Tracking": [{**t, "TrackingCategoryID": self.tracking["TrackingCategoryID"]}
                                     for t in line.get("Tracking") or []]})
        return out


def seed_organisation(code: str, clock: Callable[[], float] = time.time) -> Organisation | None:
    """The organisation of a demo-firm legal entity (or of the acquired AU01); None for an unknown code."""
    entity = next((e for e in demo_firm().legal_entities if e.code == code), None) or ACQUIRED.get(code)
    return Organisation(entity, clock) if entity is not None else None
