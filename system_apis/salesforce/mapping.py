"""Salesforce Account/Opportunity records (dicts as on the wire) <-> canonical CRM objects.

Pure functions, no I/O. Money never passes through float arithmetic: the client decodes
JSON numbers as `Decimal`, and anything else is converted through `str` so a stray float
still keeps its shortest repr (`125000.1`, not `125000.100000000005...`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from contracts.common import Money
from contracts.crm import Account, AccountUpsert, Address, Opportunity, OpportunityStage

__all__ = [
    "ACCOUNT_FIELDS",
    "ACCOUNT_PREFIX",
    "EXTERNAL_ID_FIELD",
    "OPPORTUNITY_FIELDS",
    "OPPORTUNITY_PREFIX",
    "account_from_sf",
    "account_to_sf",
    "account_upsert_to_sf",
    "is_salesforce_id",
    "opportunity_from_sf",
    "opportunity_to_sf",
    "stage_from_sf",
    "stage_to_sf",
]

EXTERNAL_ID_FIELD: Final = "External_Id__c"
ACCOUNT_PREFIX: Final = "001"
OPPORTUNITY_PREFIX: Final = "006"

ACCOUNT_FIELDS: Final = (
    "Id", "Name", "BillingStreet", "BillingCity", "BillingPostalCode", "BillingCountry", "CurrencyIsoCode",
    "Industry", "Tax_Id__c", EXTERNAL_ID_FIELD,
)
OPPORTUNITY_FIELDS: Final = (
    "Id", "Name", "AccountId", "StageName", "IsWon", "Amount", "CloseDate", "CurrencyIsoCode", "Legal_Entity__c",
    "Project_Template__c", "Practice__c", "Start_Date__c", "End_Date__c", EXTERNAL_ID_FIELD,
)

# The standard sales process picklist; an org may rename or add stages (see stage_from_sf).
# https://help.salesforce.com/s/articleView?id=sf.customize_oppstages.htm
_STAGE_TO_SF: Final[dict[OpportunityStage, str]] = {
    "prospecting": "Prospecting",
    "qualification": "Qualification",
    "proposal": "Proposal/Price Quote",
    "negotiation": "Negotiation/Review",
    "closed_won": "Closed Won",
    "closed_lost": "Closed Lost",
}
_STAGE_FROM_SF: Final[dict[str, OpportunityStage]] = {v: k for k, v in _STAGE_TO_SF.items()}

# Orgs without State and Country picklists store free text in BillingCountry.
_COUNTRY_NAMES: Final = {
    "UNITED STATES": "US", "UNITED STATES OF AMERICA": "US", "USA": "US", "UNITED KINGDOM": "GB", "UK": "GB",
    "GREAT BRITAIN": "GB", "GERMANY": "DE", "DEUTSCHLAND": "DE", "FRANCE": "FR", "NETHERLANDS": "NL",
}

# 15-character case-sensitive or 18-character case-insensitive record id.
# https://help.salesforce.com/s/articleView?id=000385008&type=1
_SF_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")


def is_salesforce_id(value: str, prefix: str | None = None) -> bool:
    """Whether `value` is shaped like a Salesforce record id (of the object with key `prefix`)."""
    return bool(_SF_ID.match(value)) and (prefix is None or value.startswith(prefix))


def stage_to_sf(stage: OpportunityStage) -> str:
    return _STAGE_TO_SF[stage]


def stage_from_sf(stage_name: str | None, is_won: bool | None) -> OpportunityStage:
    """The canonical stage of a Salesforce StageName.

    A stage this adapter does not know (orgs customise the picklist) is closed_won when
    Salesforce says the deal is won, else prospecting: provisioning acts only on
    closed_won, so misreading an unknown open stage can never start a project.
    """
    known = _STAGE_FROM_SF.get(stage_name or "")
    if known is not None:
        return known
    return "closed_won" if is_won else "prospecting"


def _country(value: Any) -> str | None:
    if not value:
        return None
    text = str(value).strip()
    if len(text) == 2 and text.isalpha():
        return text.upper()
    # An unrecognised name is kept verbatim rather than dropped, so reconciliation can see it.
    return _COUNTRY_NAMES.get(text.upper(), text)


def _date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def account_from_sf(record: Mapping[str, Any], *, default_currency: str = "USD") -> Account:
    """A canonical account from a Salesforce Account.

    `default_currency` stands in for CurrencyIsoCode, which only multi-currency orgs have.
    """
    return Account(
        id=str(record["Id"]),
        name=str(record["Name"]),
        billing_address=Address(
            street=_str(record.get("BillingStreet")),
            city=_str(record.get("BillingCity")),
            postal_code=_str(record.get("BillingPostalCode")),
            country=_country(record.get("BillingCountry")),
        ),
        currency=_str(record.get("CurrencyIsoCode")) or default_currency,
        tax_id=_str(record.get("Tax_Id__c")),
        industry=_str(record.get("Industry")),
        external_id=_str(record.get(EXTERNAL_ID_FIELD)),
    )


def account_upsert_to_sf(data: AccountUpsert) -> dict[str, Any]:
    """The body of an external-id upsert: every field the contract owns, nulls clearing values.

    The external id itself is not in the body: Salesforce takes it from the URL.
    """
    address = data.billing_address
    return {
        "Name": data.name,
        "BillingStreet": address.street,
        "BillingCity": address.city,
        "BillingPostalCode": address.postal_code,
        "BillingCountry": address.country,
        "CurrencyIsoCode": data.currency,
        "Industry": data.industry,
        "Tax_Id__c": data.tax_id,
    }


def account_to_sf(account: Account) -> dict[str, Any]:
    """A full Account record without `Id` (Salesforce assigns it); used to seed and to compare."""
    fields = account_upsert_to_sf(AccountUpsert(name=account.name, billing_address=account.billing_address,
                                                currency=account.currency, tax_id=account.tax_id,
                                                industry=account.industry))
    fields[EXTERNAL_ID_FIELD] = account.external_id
    return fields


def opportunity_from_sf(record: Mapping[str, Any], *, default_currency: str = "USD") -> Opportunity:
    """A canonical opportunity from a Salesforce Opportunity.

    Amount is optional in Salesforce but not in the contract: a missing amount reads as
    zero in the record's currency. An opportunity without an account (Salesforce allows
    private ones) gets an empty account_id, which provisioning rejects as a business
    exception rather than this adapter failing a whole page.
    """
    currency = _str(record.get("CurrencyIsoCode")) or default_currency
    amount = _decimal(record.get("Amount"))
    close_date = _date(record.get("CloseDate"))
    if close_date is None:
        raise ValueError(f"Opportunity {record.get('Id')} has no CloseDate, which Salesforce requires")
    is_won = bool(record.get("IsWon"))
    return Opportunity(
        id=str(record["Id"]),
        name=str(record["Name"]),
        account_id=_str(record.get("AccountId")) or "",
        stage=stage_from_sf(_str(record.get("StageName")), is_won),
        is_won=is_won,
        amount=Money(amount=amount if amount is not None else Decimal("0.00"), currency=currency),
        close_date=close_date,
        legal_entity_code=_str(record.get("Legal_Entity__c")),
        project_template=_str(record.get("Project_Template__c")),
        practice=_str(record.get("Practice__c")),
        start_date=_date(record.get("Start_Date__c")),
        end_date=_date(record.get("End_Date__c")),
    )


def opportunity_to_sf(opportunity: Opportunity, *, account_id: str | None = None,
                      external_id: str | None = None) -> dict[str, Any]:
    """An Opportunity record without `Id`; `account_id` overrides the canonical AccountId.

    `IsWon` is included for completeness of the record image, but Salesforce derives it
    from StageName and refuses it in writes, so callers writing to Salesforce drop it.
    """
    return {
        "Name": opportunity.name,
        "AccountId": account_id if account_id is not None else opportunity.account_id,
        "StageName": stage_to_sf(opportunity.stage),
        "IsWon": opportunity.stage == "closed_won",
        "Amount": opportunity.amount.amount,
        "CloseDate": opportunity.close_date.isoformat(),
        "CurrencyIsoCode": opportunity.amount.currency,
        "Legal_Entity__c": opportunity.legal_entity_code,
        "Project_Template__c": opportunity.project_template,
        "Practice__c": opportunity.practice,
        "Start_Date__c": opportunity.start_date.isoformat() if opportunity.start_date else None,
        "End_Date__c": opportunity.end_date.isoformat() if opportunity.end_date else None,
        EXTERNAL_ID_FIELD: external_id,
    }
