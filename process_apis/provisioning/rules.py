"""Business rules a won opportunity must pass before anything is written to ERP or PSA.

Pure functions, no I/O: every broken rule becomes a `Violation` naming the team that
owns the fix, all of them at once, so one replay after the fix is enough.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec

from contracts.crm import Account, Opportunity
from contracts.erp import LegalEntity, TaxRegime
from contracts.runs import Violation
from process_apis.provisioning.templates import TEMPLATES, Template

__all__ = ["Verdict", "validate"]

SALES_OPS = "sales-operations"
MASTER_DATA = "finance-master-data"
DELIVERY_OPS = "delivery-operations"

TAX_ID_FORMATS: dict[TaxRegime, re.Pattern[str]] = {
    "us_sales_tax": re.compile(r"^\d{2}-\d{7}$"),
    "uk_vat": re.compile(r"^GB(\d{9}|\d{12})$"),
    "eu_vat": re.compile(r"^[A-Z]{2}[0-9A-Z]{8,12}$"),
    "ca_gst_hst": re.compile(r"^\d{9}RT\d{4}$"),  # business number + GST/HST program account
    "au_gst": re.compile(r"^\d{11}$"),  # ABN
}


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    violations: tuple[Violation, ...]
    legal_entity: LegalEntity | None
    template: Template | None

    @property
    def ok(self) -> bool:
        return not self.violations


def validate(opportunity: Opportunity, account: Account, entities: Sequence[LegalEntity]) -> Verdict:
    out: list[Violation] = []

    def broken(code: str, detail: str, owner: str) -> None:
        out.append(Violation(code=code, detail=detail, owner=owner))

    if not opportunity.is_won:
        broken("opportunity_not_won", f"Opportunity {opportunity.id} is at stage {opportunity.stage}, not closed won.",
               SALES_OPS)
    if opportunity.amount.amount <= 0:
        broken("invalid_amount", f"Opportunity amount {opportunity.amount.amount} must be positive.", SALES_OPS)
    if opportunity.start_date and opportunity.end_date and opportunity.end_date < opportunity.start_date:
        broken("invalid_dates", "Opportunity end date is before its start date.", SALES_OPS)

    entity = next((e for e in entities if e.code == opportunity.legal_entity_code), None)
    if entity is None:
        broken("unknown_legal_entity",
               f"Legal entity {opportunity.legal_entity_code!r} does not exist in the ERP.", MASTER_DATA)
    else:
        if opportunity.amount.currency != entity.currency:
            broken("currency_mismatch", f"Deal currency {opportunity.amount.currency} differs from "
                   f"{entity.code}'s functional currency {entity.currency}.", SALES_OPS)
        if account.tax_id is None:
            if entity.requires_customer_tax_id:
                broken("missing_tax_id", f"Account {account.name} has no tax id; {entity.code} "
                       f"({entity.tax_regime}) cannot invoice without one.", MASTER_DATA)
        elif not TAX_ID_FORMATS[entity.tax_regime].match(account.tax_id.replace(" ", "")):
            broken("invalid_tax_id", f"Tax id {account.tax_id!r} is not a valid {entity.tax_regime} number.",
                   MASTER_DATA)

    address = account.billing_address
    missing = [f for f, v in (("name", account.name), ("country", address.country), ("city", address.city)) if not v]
    if missing:
        broken("incomplete_customer_master", f"Account {account.id} lacks {', '.join(missing)}.", MASTER_DATA)

    template = TEMPLATES.get(opportunity.project_template or "")
    if template is None:
        broken("unknown_project_template",
               f"Project template {opportunity.project_template!r} is not one of {sorted(TEMPLATES)}.", DELIVERY_OPS)
    return Verdict(violations=tuple(out), legal_entity=entity, template=template)
