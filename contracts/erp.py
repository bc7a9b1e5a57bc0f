"""ERP domain objects: legal entities, customers, projects, accounting periods. ERP owns posting."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from msgspec import Meta

from contracts.common import Currency, FrozenStruct, Money, NonEmpty, Struct
from contracts.crm import Address

__all__ = [
    "AccountingPeriod",
    "BillingMilestone",
    "BillingSchedule",
    "Customer",
    "CustomerUpsert",
    "ErpCapabilities",
    "ErpProject",
    "ErpProjectUpsert",
    "ErpRefusalReason",
    "LegalEntity",
    "ProjectTask",
    "TaxRegime",
    "TimePostingMode",
]

TaxRegime = Literal["us_sales_tax", "uk_vat", "eu_vat", "ca_gst_hst", "au_gst"]

ErpRefusalReason = Literal["period_closed", "project_inactive", "worker_inactive", "duplicate", "validation",
                           "rejected"]
"""Why an ERP refused a posting line, whatever the ERP: the accounting period is closed, the project
or the worker is inactive on that date, the line is a duplicate, a field or reference is invalid,
or another refusal (``rejected``)."""


TimePostingMode = Literal["per_entry", "summarised"]
"""How an ERP holds posted time: one ERP record per approved entry, or summarised lines."""


class ErpCapabilities(Struct):
    """What an ERP can take, so a caller can size its work without knowing the vendor.

    An ERP that posts ``summarised`` time (one ERP line per project, worker, rate, billing and
    period) still answers the posting result and the posted-time list per line key: the
    composition is kept beside the summary, so reconciliation matches every ledger line.
    """

    time_posting: Annotated[TimePostingMode, Meta(
        description="per_entry: one ERP time record per posting line; summarised: the lines of a batch are "
                    "grouped into one ERP line per `summary_grouping` key.")]
    summary_grouping: Annotated[list[str], Meta(
        description="The fields a summarised line groups by (empty for per_entry).",
        examples=[["project_external_id", "employee_external_id", "rate", "billable", "period"]])] = []
    time_unit_minutes: Annotated[int, Meta(
        ge=0, description="The smallest duration the ERP holds, in minutes (0: any decimal hours); a line whose "
                          "hours are not a multiple is refused as `validation`.")] = 0


class LegalEntity(Struct):
    """A contracting and invoicing entity of the firm (a NetSuite subsidiary)."""

    id: str
    code: Annotated[str, Meta(description="Short stable code, e.g. US01.", examples=["US01"])]
    name: str
    country: str
    currency: Currency
    tax_regime: TaxRegime
    tax_registration: Annotated[str, Meta(description="The entity's own VAT/EIN registration.")]
    requires_customer_tax_id: Annotated[bool, Meta(description="Customers must carry a tax id to be invoiced.")]


class Customer(Struct):
    """A customer in the ERP, linked to the CRM account by external id."""

    id: str
    external_id: str
    name: str
    legal_entity_id: str
    currency: Currency
    tax_id: str | None = None
    billing_address: Address | None = None


class CustomerUpsert(Struct):
    name: NonEmpty
    legal_entity_id: NonEmpty
    currency: Currency
    tax_id: str | None = None
    billing_address: Address | None = None


class ProjectTask(FrozenStruct, frozen=True):
    name: NonEmpty
    planned_hours: Annotated[str, Meta(pattern=r"^\d+(\.\d+)?$", description="Decimal hours.")]


class BillingMilestone(FrozenStruct, frozen=True):
    name: NonEmpty
    due_date: dt.date
    amount: Money


class BillingSchedule(FrozenStruct, frozen=True):
    """How a project bills: time and materials, fixed fee by milestone, or both."""

    billing_type: Literal["time_and_materials", "fixed_fee", "mixed"]
    milestones: list[BillingMilestone] = []
    payment_terms_days: Annotated[int, Meta(ge=0, le=180)] = 30


class ErpProject(Struct):
    """A project (NetSuite job) that financial postings are made against."""

    id: str
    external_id: str
    name: str
    customer_id: str
    legal_entity_id: str
    currency: Currency
    status: Literal["pending", "active", "closed"]
    budget: Money
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    tasks: list[ProjectTask] = []
    billing: BillingSchedule | None = None


class ErpProjectUpsert(Struct):
    name: NonEmpty
    customer_id: NonEmpty
    legal_entity_id: NonEmpty
    currency: Currency
    budget: Money
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    tasks: list[ProjectTask] = []
    billing: BillingSchedule | None = None


class AccountingPeriod(Struct):
    id: str
    name: Annotated[str, Meta(examples=["Nov 2026"])]
    start_date: dt.date
    end_date: dt.date
    is_closed: bool
    ar_locked: bool = False
    ap_locked: bool = False
    legal_entity_id: str | None = None
