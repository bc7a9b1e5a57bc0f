"""HubSpot deal/company properties (strings on the wire) <-> canonical CRM objects. Pure functions, no I/O.

HubSpot sends every property value as a string (``"amount": "1500.00"``), so money goes string ->
`Decimal` and never through float. Standard properties used: deals ``dealname``, ``amount``,
``deal_currency_code``, ``closedate``, ``dealstage``, ``pipeline``, ``hs_is_closed_won``; companies ``name``,
``address``, ``city``, ``zip``, ``country``, ``industry``.
(https://knowledge.hubspot.com/properties/hubspots-default-deal-properties,
https://knowledge.hubspot.com/properties/hubspot-crm-default-company-properties)

What HubSpot has no standard property for is a custom property the firm's portal defines (group
"psconnect"): ``psconnect_external_id`` (unique value, so it serves as ``idProperty`` for upserts),
``psconnect_legal_entity`` (the contracting entity code, e.g. CA01 — a deal property, set by sales when the
deal is booked), ``psconnect_project_template``, ``psconnect_practice``, ``psconnect_start_date``,
``psconnect_end_date`` on deals, and ``psconnect_currency``, ``psconnect_tax_id`` on companies (a
HubSpot company has no currency; the connection's default currency stands in when it is unset).

An opportunity's account is the deal's first associated company (association ``deal_to_company``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Final

from contracts.common import Money
from contracts.crm import Account, AccountUpsert, Address, Opportunity, OpportunityStage

__all__ = [
    "COMPANY_PROPERTIES",
    "DEAL_PROPERTIES",
    "EXTERNAL_ID",
    "LEGAL_ENTITY",
    "MappingError",
    "account_from_company",
    "account_upsert_to_properties",
    "company_properties",
    "deal_properties",
    "is_hubspot_id",
    "opportunity_from_deal",
    "stage_from_hubspot",
    "stage_to_hubspot",
]

EXTERNAL_ID: Final = "psconnect_external_id"
LEGAL_ENTITY: Final = "psconnect_legal_entity"

COMPANY_PROPERTIES: Final = ("name", "address", "city", "zip", "country", "industry", "psconnect_currency",
                             "psconnect_tax_id", EXTERNAL_ID)
DEAL_PROPERTIES: Final = ("dealname", "amount", "deal_currency_code", "closedate", "dealstage", "pipeline",
                          "hs_is_closed_won", LEGAL_ENTITY, "psconnect_project_template", "psconnect_practice",
                          "psconnect_start_date", "psconnect_end_date", EXTERNAL_ID)

# The default sales pipeline's internal stage ids.
# https://knowledge.hubspot.com/object-settings/set-up-and-customize-pipelines — default deal stages
_STAGE_TO_HS: Final[dict[OpportunityStage, str]] = {
    "prospecting": "appointmentscheduled",
    "qualification": "qualifiedtobuy",
    "proposal": "presentationscheduled",
    "negotiation": "contractsent",
    "closed_won": "closedwon",
    "closed_lost": "closedlost",
}
_STAGE_FROM_HS: Final[dict[str, OpportunityStage]] = {
    **{v: k for k, v in _STAGE_TO_HS.items()},
    "decisionmakerboughtin": "proposal",
}
_COUNTRIES: Final = {"CANADA": "CA", "UNITED STATES": "US", "USA": "US", "UNITED KINGDOM": "GB", "GERMANY": "DE",
                     "AUSTRALIA": "AU", "FRANCE": "FR", "NETHERLANDS": "NL"}
_COUNTRY_NAMES: Final = {"CA": "Canada", "US": "United States", "GB": "United Kingdom", "DE": "Germany",
                         "AU": "Australia", "FR": "France", "NL": "Netherlands"}

Properties = Mapping[str, str | None]


class MappingError(ValueError):
    """A HubSpot record the canonical contract cannot hold (e.g. a deal without a close date)."""


def is_hubspot_id(value: str) -> bool:
    """HubSpot record ids are decimal numbers; anything else is a psconnect external id."""
    return value.isdigit() and len(value) <= 20


def stage_to_hubspot(stage: OpportunityStage) -> str:
    return _STAGE_TO_HS[stage]


def stage_from_hubspot(dealstage: str | None, is_closed_won: bool) -> OpportunityStage:
    """The canonical stage of a HubSpot deal stage id.

    Portals add pipelines with their own stage ids; HubSpot's calculated ``hs_is_closed_won`` then says
    whether the stage is a won one. An unknown open stage reads as prospecting, so misreading it can
    never start a project (provisioning acts on closed_won only).
    """
    known = _STAGE_FROM_HS.get(dealstage or "")
    if is_closed_won or known == "closed_won":
        return "closed_won"
    return known or "prospecting"


def _text(props: Properties, name: str) -> str | None:
    value = props.get(name)
    return value if value not in (None, "") else None


def _date(value: str | None) -> dt.date | None:
    """HubSpot dates: a date-time (``2026-10-15T00:00:00Z``), a date, or epoch milliseconds."""
    if not value:
        return None
    try:
        if value.isdigit():
            return dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC).date()
        if "T" in value:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC).date()
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise MappingError(f"unreadable date {value!r}") from exc


def _country(value: str | None) -> str | None:
    if not value:
        return None
    text = value.strip()
    if len(text) == 2 and text.isalpha():
        return text.upper()
    return _COUNTRIES.get(text.upper(), text)  # an unknown name is kept, so reconciliation can see it


def _day(value: dt.date | None) -> str:
    return value.isoformat() if value else ""


def account_from_company(record_id: str, props: Properties, *, default_currency: str) -> Account:
    name = _text(props, "name")
    if name is None:
        raise MappingError(f"company {record_id} has no name")
    return Account(
        id=record_id, name=name,
        billing_address=Address(street=_text(props, "address"), city=_text(props, "city"),
                                postal_code=_text(props, "zip"), country=_country(_text(props, "country"))),
        currency=_text(props, "psconnect_currency") or default_currency,
        tax_id=_text(props, "psconnect_tax_id"), industry=_text(props, "industry"),
        external_id=_text(props, EXTERNAL_ID),
    )


def account_upsert_to_properties(data: AccountUpsert) -> dict[str, str]:
    """Every property the contract owns; an empty string clears a value (HubSpot's way to unset one)."""
    address = data.billing_address
    return {
        "name": data.name, "address": address.street or "", "city": address.city or "",
        "zip": address.postal_code or "",
        "country": _COUNTRY_NAMES.get(address.country or "", address.country or ""),
        "psconnect_currency": data.currency, "psconnect_tax_id": data.tax_id or "", "industry": data.industry or "",
    }


def company_properties(account: Account) -> dict[str, str]:
    """A company's properties from a canonical account (seeding the simulator, comparing)."""
    props = account_upsert_to_properties(AccountUpsert(name=account.name, billing_address=account.billing_address,
                                                       currency=account.currency, tax_id=account.tax_id,
                                                       industry=account.industry))
    props[EXTERNAL_ID] = account.external_id or ""
    return props


def _amount(value: str | None, record_id: str) -> Decimal:
    if value is None:
        return Decimal("0.00")  # an amount is optional in HubSpot, not in the contract
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise MappingError(f"deal {record_id} has an unreadable amount {value!r}") from exc


def opportunity_from_deal(record_id: str, props: Properties, company_ids: list[str], *,
                          default_currency: str) -> Opportunity:
    """A canonical opportunity from a HubSpot deal and its associated companies.

    A deal without a company gets an empty account_id, which provisioning refuses as a business
    exception rather than this adapter failing a whole page.
    """
    close_date = _date(_text(props, "closedate"))
    if close_date is None:
        raise MappingError(f"deal {record_id} has no close date")
    stage = stage_from_hubspot(_text(props, "dealstage"), _text(props, "hs_is_closed_won") == "true")
    return Opportunity(
        id=record_id, name=_text(props, "dealname") or "", account_id=company_ids[0] if company_ids else "",
        stage=stage, is_won=stage == "closed_won",
        amount=Money(amount=_amount(_text(props, "amount"), record_id),
                     currency=_text(props, "deal_currency_code") or default_currency),
        close_date=close_date, legal_entity_code=_text(props, LEGAL_ENTITY),
        project_template=_text(props, "psconnect_project_template"), practice=_text(props, "psconnect_practice"),
        start_date=_date(_text(props, "psconnect_start_date")), end_date=_date(_text(props, "psconnect_end_date")),
    )


def deal_properties(opportunity: Opportunity, *, external_id: str | None = None) -> dict[str, str]:
    """A deal's properties from a canonical opportunity (seeding the simulator). ``closedate`` is midnight UTC."""
    return {
        "dealname": opportunity.name, "amount": str(opportunity.amount.amount),
        "deal_currency_code": opportunity.amount.currency,
        "closedate": f"{opportunity.close_date.isoformat()}T00:00:00Z",
        "dealstage": stage_to_hubspot(opportunity.stage),
        "pipeline": "default", LEGAL_ENTITY: opportunity.legal_entity_code or "",
        "psconnect_project_template": opportunity.project_template or "",
        "psconnect_practice": opportunity.practice or "", "psconnect_start_date": _day(opportunity.start_date),
        "psconnect_end_date": _day(opportunity.end_date), EXTERNAL_ID: external_id or "",
    }
