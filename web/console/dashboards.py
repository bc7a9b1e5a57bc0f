"""The console's dashboards page: the seven widgets of the dashboards experience API, fetched for one filter set.

The console stays a backend-for-frontend: every widget is one call to
`/experience/dashboards/v1` through the gateway, with the console's service identity
on behalf of the signed-in person, decoded into the contract's Struct — so a contract
change fails here, loudly, instead of drawing an empty chart. The calls run side by
side; the page waits for all of them and shows the first problem (an unknown legal
entity, a malformed period, a stale cursor) as a message rather than a broken page.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

import msgspec

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

__all__ = ["DASHBOARDS", "LISTS", "PAGE_SIZE", "Dashboard", "DashboardFilters", "Fetch", "load"]

DASHBOARDS = "/experience/dashboards/v1"
PAGE_SIZE = 15  # rows per list widget: a horizontal chart of 15 projects still fits one screen
LISTS = ("workers", "backlog", "readiness", "margin", "wip")  # the paged widgets, each with its own cursor
T = TypeVar("T")


class Fetch(Protocol):
    """GET one dashboards route through the gateway and decode the answer into `into`."""

    def __call__(self, path: str, params: Mapping[str, str | int], into: type[T]) -> Coroutine[Any, Any, T]: ...


class DashboardFilters(msgspec.Struct, frozen=True, kw_only=True):
    """What the reader chose in the filter form, plus where each list widget is paged to."""

    legal_entity: str | None = None
    period: str | None = None
    practice: str | None = None
    as_of: str | None = None
    cursors: dict[str, str] = {}

    def common(self) -> dict[str, str]:
        """The query parameters every widget takes (absent ones left out: the API picks its defaults)."""
        chosen = {"legal_entity": self.legal_entity, "period": self.period, "practice": self.practice}
        return {k: v for k, v in chosen.items() if v}

    def link(self, **cursors: str | None) -> str:
        """The page's query string with these filters; named cursors replace (or, when None, drop) the current."""
        merged = {**self.cursors, **cursors}
        pairs = {**self.common(), **({"as_of": self.as_of} if self.as_of else {}),
                 **{f"{name}_cursor": c for name, c in merged.items() if c}}
        return urlencode(pairs)


@dataclass
class Dashboard:
    """Every widget's answer for one filter set, and the choices the filter form offers."""

    filters: DashboardFilters
    utilization: UtilizationReport
    workers: WorkerUtilizationPage
    backlog: BacklogPage
    readiness: ReadinessPage
    aging: AgingReport
    margin: MarginPage
    wip: WipPage
    receivables: ReceivablesReport
    health: SyncHealth
    entities: list[str] = field(default_factory=list)
    practices: list[str] = field(default_factory=list)


async def load(fetch: Fetch, filters: DashboardFilters) -> Dashboard:
    """Call every widget once (and, when the view is narrowed, the unfiltered utilization for the menus).

    Raises the first widget's `ProblemError`, after every call has finished, so no call is
    left running behind a page that has already answered.
    """
    common = filters.common()

    def paged(name: str) -> dict[str, str | int]:
        cursor = filters.cursors.get(name)
        return {**common, "limit": PAGE_SIZE, **({"cursor": cursor} if cursor else {})}

    aging_params: dict[str, str | int] = {**common, **({"as_of": filters.as_of} if filters.as_of else {})}
    utilization = asyncio.create_task(fetch(f"{DASHBOARDS}/utilization", common, UtilizationReport))
    workers = asyncio.create_task(fetch(f"{DASHBOARDS}/utilization/workers", paged("workers"), WorkerUtilizationPage))
    backlog = asyncio.create_task(fetch(f"{DASHBOARDS}/backlog", paged("backlog"), BacklogPage))
    readiness = asyncio.create_task(fetch(f"{DASHBOARDS}/invoice-readiness", paged("readiness"), ReadinessPage))
    aging = asyncio.create_task(fetch(f"{DASHBOARDS}/unbilled-aging", aging_params, AgingReport))
    margin = asyncio.create_task(fetch(f"{DASHBOARDS}/margin", paged("margin"), MarginPage))
    wip = asyncio.create_task(fetch(f"{DASHBOARDS}/work-in-progress", paged("wip"), WipPage))
    # Receivables are as of a day, not a period: the entity filter and the aging date apply.
    receivables = asyncio.create_task(fetch(f"{DASHBOARDS}/receivables", {
        k: v for k, v in aging_params.items() if k in ("legal_entity", "as_of")}, ReceivablesReport))
    health = asyncio.create_task(fetch(f"{DASHBOARDS}/sync-health", common, SyncHealth))
    # The menus list what the reader may pick from: the entities and practices of the whole period.
    narrowed = filters.legal_entity or filters.practice
    menus = asyncio.create_task(fetch(f"{DASHBOARDS}/utilization", {"period": filters.period} if filters.period
                                      else {}, UtilizationReport)) if narrowed else utilization
    tasks: list[asyncio.Task[Any]] = [utilization, workers, backlog, readiness, aging, margin, wip, receivables,
                                      health, menus]
    await asyncio.wait(tasks)
    failures = [error for task in tasks if (error := task.exception()) is not None]  # read each, so none is "lost"
    if failures:
        raise failures[0]
    everything = menus.result()
    return Dashboard(filters=filters, utilization=utilization.result(), workers=workers.result(),
                     backlog=backlog.result(), readiness=readiness.result(), aging=aging.result(),
                     margin=margin.result(), wip=wip.result(), receivables=receivables.result(),
                     health=health.result(),
                     entities=sorted(g.key for g in everything.by_legal_entity),
                     practices=sorted(g.key for g in everything.by_practice))
