"""Certinia expenses (``pse__Expense__c``) and a contract's expense terms <-> canonical objects. Pure, no I/O.

Expense fields, from Certinia's PSA data dictionary
(https://help.certinia.com/TechnicalReference/2024.3/ProfessionalServicesAutomation/Schema/Expense__c.htm):
pse__Expense_Date__c, pse__Amount__c ("in the expense's incurred currency", so CurrencyIsoCode is
kept and the process converts), pse__Type__c (the category picklist), pse__Billable__c,
pse__Billed__c, pse__Resource__c (a Contact), pse__Project__c, pse__Expense_Report__c,
pse__Status__c / pse__Approved__c, pse__Distance__c with pse__Rate_Unit__c and
pse__Applied_Expense_Rate__c (the ``pse__Expense_Limit_Rate__c`` whose pse__Amount__c is the
per-unit rate that priced a mileage line), pse__Lost_Receipt__c, pse__Notes__c, LastModifiedDate.

Status: pse__Status__c Draft -> draft, Submitted -> submitted, Approved -> approved, Rejected ->
rejected; a checked pse__Approved__c is approved whatever the status says, since Certinia sets
that box from the expense report's approval and bills only expenses that carry it.

Receipt: Salesforce keeps a receipt as a File linked to the expense (``ContentDocumentLink``,
LinkedEntityId = the expense), read by a second query per page. ``receipt_url`` is the REST
sObject Blob Retrieve URL of the file's latest version,
``{org}/services/data/v60.0/sobjects/ContentVersion/{LatestPublishedVersionId}/VersionData``
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_sobject_blob_retrieve.htm),
fetchable with the same session; a line with pse__Lost_Receipt__c checked has none, whatever is attached
(the resource declared the receipt lost; an attachment is then the declaration, not the receipt).
With several files the first by ContentDocumentId is named.

Categories: pse__Type__c values are the category names, except three of Certinia's shipped picklist
values that mean a canonical category (`CATEGORY_OF`): Auto Mileage, Lodging (Room and Tax) and
Business Meals; the firm's other categories (Travel, Software, ...) are values its admin added.

Expense terms of a contract, on its project (``pse__Proj__c``). Certinia has a standard place for
caps only: an ``pse__Expense_Limit_Rate__c`` record on the project (pse__Is_Rate__c unchecked,
pse__Is_Active__c checked, no pse__Resource_Role__c) "enforces a maximum amount" per expense type
(https://help.certinia.com/TechnicalReference/2023.3/ProfessionalServicesAutomation/Schema/Expense_Limit_Rate__c.htm);
with several for one type the latest by pse__Start_Date__c wins. Role-specific limits and limits set
on a region, practice or group are staffing policy, not the client's contract, and are not read.
Everything else is a custom field psconnect adds to pse__Proj__c (documented for the org's admin):

- ``Billable_Expense_Types__c`` multi-select picklist (values of pse__Expense__c.pse__Type__c),
  ';'-joined on the wire: the categories the client is billed for. Unset: the project holds no
  expense terms (``expense_terms`` null).
- ``Expense_Markup__c`` Percent(5,2): the markup on billed expenses; unset = billed at cost. Not
  Certinia's pse__Billable_Fee_Percentage__c, which is set per expense line, not by the contract.
- ``Receipt_Required_Above__c`` Currency, in the project's currency; unset = 0 (every billed
  expense needs a receipt: the strict reading when the contract is silent).

A project that is not billable (pse__Is_Billable__c unchecked) or excluded from billing
(pse__Exclude_from_Billing__c) bills no expense, whatever the picklist says: its terms keep the
markup and caps but list no billable category. The project's pse__Expense_Budget__c is a total for
the whole project, not a per-line term, and is not part of `ExpenseTerms`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from contracts.common import Money
from contracts.psa import ExpenseTerms
from contracts.time import Expense, TimeEntryStatus
from system_apis._internal.force_rest import API_PATH
from system_apis.certinia.client import BASE_URL
from system_apis.certinia.mapping import SOURCE, MappingError, instant, money, related

__all__ = [
    "CATEGORY_OF",
    "EXPENSE_FIELDS",
    "EXPENSE_LIMIT_FIELDS",
    "EXPENSE_STATUS_OF",
    "EXPENSE_STATUS_TO",
    "RECEIPT_LINK_FIELDS",
    "category_of",
    "expense_of",
    "expense_terms_of",
    "expense_type",
    "limit_fields",
    "receipt_url",
    "receipts_of",
    "terms_fields",
]

EXPENSE_FIELDS: Final = (
    "Id", "Name", "pse__Expense_Date__c", "pse__Amount__c", "CurrencyIsoCode", "pse__Type__c", "pse__Billable__c",
    "pse__Billed__c", "pse__Resource__c", "pse__Resource__r.Email", "pse__Project__c",
    "pse__Project__r.External_Id__c", "pse__Expense_Report__c", "pse__Status__c", "pse__Approved__c",
    "pse__Distance__c", "pse__Rate_Unit__c", "pse__Applied_Expense_Rate__c",
    "pse__Applied_Expense_Rate__r.pse__Amount__c", "pse__Applied_Expense_Rate__r.CurrencyIsoCode",
    "pse__Lost_Receipt__c", "pse__Notes__c", "pse__Description__c", "LastModifiedDate")
RECEIPT_LINK_FIELDS: Final = ("Id", "LinkedEntityId", "ContentDocumentId", "ContentDocument.LatestPublishedVersionId")
EXPENSE_LIMIT_FIELDS: Final = ("Id", "pse__Project__c", "pse__Type__c", "pse__Amount__c", "pse__Is_Rate__c",
                               "pse__Is_Active__c", "pse__Resource_Role__c", "pse__Start_Date__c",
                               "pse__End_Date__c", "CurrencyIsoCode")

EXPENSE_STATUS_OF: Final[Mapping[str, TimeEntryStatus]] = {
    "Draft": "draft", "Submitted": "submitted", "Approved": "approved", "Rejected": "rejected"}
EXPENSE_STATUS_TO: Final = {v: k for k, v in EXPENSE_STATUS_OF.items()}
CATEGORY_OF: Final[Mapping[str, str]] = {
    "Auto Mileage": "Mileage", "Lodging (Room and Tax)": "Lodging", "Business Meals": "Meals"}
"""Certinia's shipped pse__Type__c values that name a canonical category; any other value is the category."""
_TYPE_OF: Final = {v: k for k, v in CATEGORY_OF.items()}
_UNIT_PRICE: Final = Decimal("0.0001")


def category_of(expense_type: Any) -> str:
    name = str(expense_type or "").strip()
    return CATEGORY_OF.get(name, name)


def expense_type(category: str) -> str:
    """The pse__Type__c value of a canonical category."""
    return _TYPE_OF.get(category, category)


def _date(value: Any, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise MappingError(field, f"{field} is not a date: {value!r}") from exc


def _decimal(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


# --- expenses ---------------------------------------------------------------------------------------------------


def receipt_url(version_id: str) -> str:
    return f"{BASE_URL}{API_PATH}/sobjects/ContentVersion/{version_id}/VersionData"


def receipts_of(links: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Expense id -> the receipt URL of its first file (by ContentDocumentId), from ContentDocumentLink rows."""
    first: dict[str, tuple[str, str]] = {}
    for link in links:
        expense_id = str(link.get("LinkedEntityId") or "")
        document = str(link.get("ContentDocumentId") or "")
        version = related(link, "ContentDocument.LatestPublishedVersionId")
        if not expense_id or not version:
            continue
        if expense_id not in first or document < first[expense_id][0]:
            first[expense_id] = (document, str(version))
    return {expense_id: receipt_url(version) for expense_id, (_, version) in first.items()}


def _status(record: Mapping[str, Any]) -> TimeEntryStatus:
    if record.get("pse__Approved__c"):
        return "approved"
    status = EXPENSE_STATUS_OF.get(str(record.get("pse__Status__c") or ""))
    if status is None:
        raise MappingError("pse__Status__c", f"unknown expense status {record.get('pse__Status__c')!r}")
    return status


def _unit_price(record: Mapping[str, Any], amount: Money, units: Decimal) -> Money:
    """The applied expense rate when it is priced in the expense's currency, else what the line paid per unit."""
    rate = _decimal(related(record, "pse__Applied_Expense_Rate__r.pse__Amount__c"))
    rate_currency = related(record, "pse__Applied_Expense_Rate__r.CurrencyIsoCode") or amount.currency
    if rate is not None and rate_currency == amount.currency:
        return money(rate, amount.currency)
    return Money(amount=(amount.amount / units).quantize(_UNIT_PRICE), currency=amount.currency)


def expense_of(record: Mapping[str, Any], receipt: str | None, *, default_currency: str = "USD") -> Expense:
    """The canonical expense of one pse__Expense__c row; `receipt` is its file's URL (`receipts_of`), if any."""
    if record.get("pse__Amount__c") is None:
        raise MappingError("pse__Amount__c", "an expense without an amount")
    status = _status(record)
    amount = money(record["pse__Amount__c"], str(record.get("CurrencyIsoCode") or default_currency))
    distance = _decimal(record.get("pse__Distance__c"))
    units = distance if distance else None
    updated = instant(record.get("LastModifiedDate"))
    return Expense(
        id=str(record["Id"]), source=SOURCE, user_id=str(record.get("pse__Resource__c") or ""),
        user_email=str(related(record, "pse__Resource__r.Email") or ""),
        project_code=str(related(record, "pse__Project__r.External_Id__c") or ""),
        date=_date(record.get("pse__Expense_Date__c"), "pse__Expense_Date__c"),
        category=category_of(record.get("pse__Type__c")), amount=amount,
        billable=bool(record.get("pse__Billable__c")), status=status, updated_at=updated, units=units,
        unit_price=_unit_price(record, amount, units) if units else None,
        receipt_url=None if record.get("pse__Lost_Receipt__c") else receipt,
        notes=record.get("pse__Notes__c") or record.get("pse__Description__c") or None,
        approved_at=updated if status == "approved" else None, is_billed=bool(record.get("pse__Billed__c")))


# --- expense terms ----------------------------------------------------------------------------------------------


def _caps(limits: Sequence[Mapping[str, Any]], currency: str) -> dict[str, Money]:
    chosen: dict[str, Mapping[str, Any]] = {}
    for limit in limits:
        if limit.get("pse__Is_Rate__c") or not limit.get("pse__Is_Active__c") or limit.get("pse__Resource_Role__c") \
                or limit.get("pse__Amount__c") is None:
            continue
        category = category_of(limit.get("pse__Type__c"))
        held = chosen.get(category)
        if held is None or str(limit.get("pse__Start_Date__c") or "") >= str(held.get("pse__Start_Date__c") or ""):
            chosen[category] = limit
    return {category: money(limit["pse__Amount__c"], str(limit.get("CurrencyIsoCode") or currency))
            for category, limit in sorted(chosen.items())}


def expense_terms_of(project: Mapping[str, Any], limits: Sequence[Mapping[str, Any]], *,
                     currency: str) -> ExpenseTerms | None:
    """The contract's expense terms held on a pse__Proj__c row and its expense limits; None when it holds none."""
    types = str(project.get("Billable_Expense_Types__c") or "")
    if not types.strip():
        return None
    categories = list(dict.fromkeys(category_of(t) for t in types.split(";") if t.strip()))
    if not project.get("pse__Is_Billable__c") or project.get("pse__Exclude_from_Billing__c"):
        categories = []
    markup = _decimal(project.get("Expense_Markup__c")) or Decimal(0)
    return ExpenseTerms(billable_categories=categories, markup_percent=markup,
                        receipt_required_above=money(project.get("Receipt_Required_Above__c") or 0, currency),
                        caps=_caps(limits, currency))


def terms_fields(terms: ExpenseTerms) -> dict[str, Any]:
    """The custom pse__Proj__c fields of `terms` as the REST API takes them (caps are `limit_fields` records)."""
    return {"Billable_Expense_Types__c": ";".join(expense_type(c) for c in terms.billable_categories) or None,
            "Expense_Markup__c": terms.markup_percent,
            "Receipt_Required_Above__c": terms.receipt_required_above.amount}


def limit_fields(project_id: str, category: str, cap: Money) -> dict[str, Any]:
    """The pse__Expense_Limit_Rate__c record that caps one category on one project."""
    return {"pse__Project__c": project_id, "pse__Type__c": expense_type(category), "pse__Amount__c": cap.amount,
            "pse__Is_Rate__c": False, "pse__Is_Active__c": True, "pse__Cascading__c": False,
            "CurrencyIsoCode": cap.currency}
