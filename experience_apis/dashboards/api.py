"""Routes of the dashboards experience API: `/experience/dashboards/v1`, one call per widget.

Every widget takes `legal_entity` (code or ERP id), `period` (YYYY-MM; default the latest
period with figures) and `practice`; lists also `limit` and `cursor`. The caller's grant of
legal entities (its token) narrows every query — see `experience_apis/_internal/scope.py`.
Backlog, invoice readiness, unbilled aging, margin, receivables and work in progress also take
`currency`: the same figures in a group currency as well (`group_currency.py`, `receivables.py`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final

from litestar import Request, Router, get
from litestar.params import QueryParameter

from contracts.common import MONTH_PATTERN
from contracts.dashboards import (
    AgingReport,
    BacklogPage,
    MarginPage,
    ReadinessPage,
    ReceivablesReport,
    SyncHealth,
    UtilizationReport,
    WipPage,
    WorkerUtilizationPage,
)
from experience_apis._internal.scope import entity_grant, resolve_entities
from experience_apis.dashboards.group_currency import aging_in, backlog_in, margin_in, readiness_in, wip_in
from experience_apis.dashboards.receivables import receivables_report
from experience_apis.dashboards.store import DashboardStore, Entities
from foundation.clock import utcnow
from foundation.paging import CURSOR_MAX_LENGTH, CURSOR_PATTERN
from foundation.periods import month_bounds
from process_apis.exchange_rates import RateBook

__all__ = ["API", "dashboards_router"]

API = "experience.dashboards"
LegalEntity = Annotated[str | None, QueryParameter(
    pattern=r"^[A-Za-z0-9-]{2,20}$", description="Legal entity code (US01) or ERP id (LE-US01).")]
Period = Annotated[str | None, QueryParameter(
    pattern=MONTH_PATTERN, description="YYYY-MM; default the latest period with figures.")]
Practice = Annotated[str | None, QueryParameter(max_length=60, description="Practice, e.g. technology.")]
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
Cursor = Annotated[str | None, QueryParameter(
    description="Opaque cursor: the `next_cursor` of the previous page of this same list; any other value is a 422 "
                "`invalid_cursor`.",
    pattern=CURSOR_PATTERN, max_length=CURSOR_MAX_LENGTH)]


GroupCurrency = Annotated[str | None, QueryParameter(
    pattern=r"^[A-Z]{3}$", description="Also report in this group currency (ISO 4217), at each legal entity's own "
                                       "rate (its ERP's, else the configured table) for the day the figures are at.")]


_REFERS: Final = {"refers_to": ("legal_entity",)}
"""`legal_entity` must name an existing entity (code or ERP id): an unknown one is a 422 on that parameter."""


def dashboards_router(store: DashboardStore, rates: RateBook) -> Router:
    def scope(request: Request[Any, Any, Any], legal_entity: str | None) -> Entities:
        grant = entity_grant(request)
        if grant is None and legal_entity is None:
            return None
        return resolve_entities(grant, legal_entity, store.entity_aliases())

    def period_of(entities: Entities, period: str | None) -> str:
        return period or store.latest_period(entities)

    @get("/utilization", operation_id="dashboards.getUtilization", opt=_REFERS,
         summary="Capacity, planned, actual and billable hours, by practice and legal entity")
    async def utilization(request: Request[Any, Any, Any], legal_entity: LegalEntity = None, period: Period = None,
                          practice: Practice = None) -> UtilizationReport:
        entities = scope(request, legal_entity)
        return store.utilization(entities, period_of(entities, period), practice)

    @get("/utilization/workers", operation_id="dashboards.listWorkerUtilization", opt=_REFERS,
         summary="Utilization per worker, ordered by worker id")
    async def worker_utilization(request: Request[Any, Any, Any], legal_entity: LegalEntity = None,
                                 period: Period = None, practice: Practice = None, limit: Limit = 50,
                                 cursor: Cursor = None) -> WorkerUtilizationPage:
        entities = scope(request, legal_entity)
        return store.worker_utilization(entities, period_of(entities, period), practice, limit, cursor)

    @get("/backlog", operation_id="dashboards.listBacklog", opt=_REFERS,
         summary="Contracted value not yet delivered by the end of the period, per project")
    async def backlog(request: Request[Any, Any, Any], legal_entity: LegalEntity = None, period: Period = None,
                      practice: Practice = None, limit: Limit = 50, cursor: Cursor = None,
                      currency: GroupCurrency = None) -> BacklogPage:
        entities = scope(request, legal_entity)
        chosen = period_of(entities, period)
        page, figures = store.backlog(entities, chosen, practice, limit, cursor)
        if currency is None:
            return page
        return await backlog_in(page, figures, rates, currency, month_bounds(chosen)[1])

    @get("/invoice-readiness", operation_id="dashboards.listInvoiceReadiness", opt=_REFERS,
         summary="Approved time not yet invoiced, posted value and held hours, per project")
    async def invoice_readiness(request: Request[Any, Any, Any], legal_entity: LegalEntity = None,
                                period: Period = None, practice: Practice = None, limit: Limit = 50,
                                cursor: Cursor = None, currency: GroupCurrency = None) -> ReadinessPage:
        entities = scope(request, legal_entity)
        chosen = period_of(entities, period)
        page, figures = store.readiness(entities, chosen, practice, limit, cursor)
        if currency is None:
            return page
        return await readiness_in(page, figures, rates, currency, month_bounds(chosen)[1])

    @get("/unbilled-aging", operation_id="dashboards.getUnbilledAging", opt=_REFERS,
         summary="Unbilled approved time by age of its work date: 0-30, 31-60, 61-90, 90+ days")
    async def unbilled_aging(request: Request[Any, Any, Any], legal_entity: LegalEntity = None,
                             period: Period = None, practice: Practice = None,
                             as_of: Annotated[dt.date | None, QueryParameter(
                                 description="Date ages are measured at; default today.")] = None,
                             currency: GroupCurrency = None) -> AgingReport:
        entities = scope(request, legal_entity)
        report, figures = store.aging(entities, period_of(entities, period), practice, as_of or utcnow().date())
        if currency is None:
            return report
        return await aging_in(report, figures, rates, currency)

    @get("/margin", operation_id="dashboards.listMargin",
         opt=_REFERS, summary="Revenue, cost and margin of the period, per project")
    async def margin(request: Request[Any, Any, Any], legal_entity: LegalEntity = None, period: Period = None,
                     practice: Practice = None, limit: Limit = 50, cursor: Cursor = None,
                     currency: GroupCurrency = None) -> MarginPage:
        entities = scope(request, legal_entity)
        chosen = period_of(entities, period)
        page, figures = store.margin(entities, chosen, practice, limit, cursor)
        if currency is None:
            return page
        return await margin_in(page, figures, rates, currency, month_bounds(chosen)[1])

    @get("/receivables", operation_id="dashboards.getReceivables", opt=_REFERS,
         summary="Accounts-receivable aging and days sales outstanding per legal entity and customer")
    async def receivables(request: Request[Any, Any, Any], legal_entity: LegalEntity = None,
                          as_of: Annotated[dt.date | None, QueryParameter(
                              description="Date ages and the DSO window are measured at; default today.")] = None,
                          days: Annotated[int, QueryParameter(ge=1, le=366, description="DSO window in days.")] = 90,
                          currency: GroupCurrency = None,
                          limit: Limit = 50, cursor: Cursor = None) -> ReceivablesReport:
        return await receivables_report(store.engine, rates, scope(request, legal_entity), as_of or utcnow().date(),
                                        days, currency, limit, cursor)

    @get("/work-in-progress", operation_id="dashboards.listWorkInProgress", opt=_REFERS,
         summary="Revenue recognised but not yet billed, per project, at the end of a period")
    async def work_in_progress(request: Request[Any, Any, Any], legal_entity: LegalEntity = None,
                               period: Period = None, practice: Practice = None, limit: Limit = 50,
                               cursor: Cursor = None, currency: GroupCurrency = None) -> WipPage:
        entities = scope(request, legal_entity)
        chosen = period_of(entities, period)
        page, figures = store.work_in_progress(entities, chosen, practice, limit, cursor)
        if currency is None:
            return page
        return await wip_in(page, figures, rates, currency, month_bounds(chosen)[1])

    @get("/sync-health", operation_id="dashboards.getSyncHealth", opt=_REFERS,
         summary="Open exceptions by reason, age and owner; failed runs, dead letters, last good run per flow")
    async def sync_health(request: Request[Any, Any, Any], legal_entity: LegalEntity = None,
                          period: Period = None, practice: Practice = None) -> SyncHealth:
        """`period` and `practice` are accepted like on every widget; sync health is current state, not a period's."""
        return store.sync_health(scope(request, legal_entity))

    return Router(path="/experience/dashboards/v1", opt={"api": API}, tags=["dashboards"],
                  route_handlers=[utilization, worker_utilization, backlog, invoice_readiness, unbilled_aging, margin,
                                  receivables, work_in_progress, sync_health])
