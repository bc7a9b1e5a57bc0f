"""CRM domain objects: accounts (customers) and opportunities. CRM owns both."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from msgspec import Meta

from contracts.common import Currency, FrozenStruct, Money, NonEmpty, Struct

__all__ = ["Account", "AccountUpsert", "Address", "Opportunity", "OpportunityStage"]

OpportunityStage = Literal[
    "prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost"
]


class Address(FrozenStruct, frozen=True):
    street: str | None = None
    city: str | None = None
    postal_code: str | None = None
    country: Annotated[str | None, Meta(description="ISO 3166-1 alpha-2 country code.")] = None


class Account(Struct):
    """A client account as the CRM holds it; the customer master of record."""

    id: Annotated[str, Meta(description="CRM id of the account.")]
    name: str
    billing_address: Address
    currency: Currency
    tax_id: Annotated[str | None, Meta(description="VAT number or EIN; required by most legal entities.")] = None
    industry: str | None = None
    external_id: Annotated[str | None, Meta(description="psconnect's stable key for the account.")] = None


class AccountUpsert(Struct):
    """Fields a caller may set when upserting an account by external id."""

    name: NonEmpty
    billing_address: Address
    currency: Currency
    tax_id: str | None = None
    industry: str | None = None


class Opportunity(Struct):
    """A sales opportunity; a closed-won one starts project provisioning."""

    id: str
    name: str
    account_id: str
    stage: OpportunityStage
    is_won: bool
    amount: Money
    close_date: dt.date
    legal_entity_code: Annotated[str | None, Meta(description="Contracting legal entity, e.g. US01.")] = None
    project_template: Annotated[str | None, Meta(description="Delivery template the project is built from.")] = None
    practice: str | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
