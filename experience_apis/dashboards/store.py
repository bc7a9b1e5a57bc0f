"""Queries behind the dashboard widgets: the billing facts, plus the process stores for sync health.

Every query takes the legal entities the caller may see (`entities`, None = all, resolved
by `experience_apis/_internal/scope.py`) and filters on them in SQL, so a restricted
consumer's totals, groups, pages and counts are computed from its entities' rows only.
Sums run over integer units of 1/10,000 (in SQL, or here over the rows a page was read with: exact
either way) and become `Decimal` here; totals are kept per currency, never added across currencies.
What a group currency converts (`Figures`) comes from the same read as the page it is added to.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Hashable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Final, get_args

import sqlalchemy as sa

from contracts.common import Money
from contracts.dashboards import (
    AgingBucket,
    AgingBucketName,
    AgingReport,
    BacklogPage,
    BacklogTotal,
    Count,
    FlowRun,
    MarginPage,
    MarginTotal,
    ProjectBacklog,
    ProjectMargin,
    ProjectReadiness,
    ReadinessPage,
    ReadinessTotal,
    SyncHealth,
    UtilizationFigures,
    UtilizationGroup,
    UtilizationReport,
    WipItem,
    WipPage,
    WipTotal,
    WorkerUtilization,
    WorkerUtilizationPage,
)
from experience_apis._internal.attribution import Attribution, entity_aliases
from foundation.clock import utcnow
from foundation.paging import decode_cursor, encode_cursor
from process_apis.exception_queue import ExceptionQueue
from process_apis.receivables.state import UNPOSTED, receivable_invoices
from process_apis.time_to_bill.billing_facts import (
    entity_codes,
    fact_contracts,
    fact_projects,
    fact_unbilled_days,
    fact_workers,
    failed_lines,
    from_units,
)
from process_apis.time_to_bill.revenue import ttb_revenue

__all__ = ["AGING", "DashboardStore", "Entities", "Figures", "plain_hours", "ratio"]

RATIO_PLACES: Final = Decimal("0.0001")
CENT: Final = Decimal("0.01")
AGE_BUCKETS: Final = ("<1h", "1-24h", "1-7d", ">7d")
AGING: Final[tuple[AgingBucketName, ...]] = get_args(AgingBucketName)
Entities = frozenset[str] | None
Figures = tuple[Hashable, str, str, tuple[int, ...]]
"""(key, legal entity, currency, money figures in 1/10,000 units): what a group-currency total converts, each figure
on its own at the entity's rate, and adds. The key is what the converted figures are looked up by: a project, an
aging bucket, or (project, entity, currency) for drafts of a project not listed."""


def ratio(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    """A four-place ratio, or None when there is nothing to divide by (never a made-up 0)."""
    if not denominator:
        return None
    return (numerator / denominator).quantize(RATIO_PLACES, ROUND_HALF_UP)


def _money(units: int | None, currency: str) -> Money:
    return Money(amount=from_units(units).quantize(CENT, ROUND_HALF_UP), currency=currency)


def plain_hours(hours: Decimal) -> Decimal:
    """Hours without trailing zeros and never in exponent form (`normalize` alone turns 10560 into 1.056E+4)."""
    hours = hours.normalize() if hours else Decimal("0")
    return hours.quantize(Decimal(1)) if hours == hours.to_integral_value() else hours


def _hours(units: int | None) -> Decimal:
    return plain_hours(from_units(units))


def _figures(capacity: int, planned: int, actual: int, billable: int) -> UtilizationFigures:
    cap = from_units(capacity)
    return UtilizationFigures(capacity_hours=_hours(capacity), planned_hours=_hours(planned),
                              actual_hours=_hours(actual), billable_hours=_hours(billable),
                              planned_utilization=ratio(from_units(planned), cap),
                              actual_utilization=ratio(from_units(billable), cap))


def _within(table: sa.Table, entities: Entities, practice: str | None = None) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if entities is not None:
        where.append(table.c.legal_entity_code.in_(sorted(entities)))
    if practice is not None:
        where.append(table.c.practice == practice)
    return where


def _page_cursor(offset: int, limit: int, fetched: int, widget: str) -> str | None:
    return encode_cursor(offset + limit, f"dashboards.{widget}") if fetched > limit else None


def _sums(rows: Sequence[tuple[str, tuple[int, ...]]]) -> list[tuple[str, list[int]]]:
    """Figures added per currency, in currency order: a page's `totals`, over every row read (never across
    currencies)."""
    sums: dict[str, list[int]] = {}
    for currency, figures in rows:
        kept = sums.setdefault(currency, [0] * len(figures))
        for n, value in enumerate(figures):
            kept[n] += value
    return sorted(sums.items())


class DashboardStore:
    def __init__(self, engine: sa.Engine, *, alias_ttl: float = 30.0) -> None:
        self.engine = engine
        self._alias_ttl = alias_ttl
        self._aliases: tuple[float, dict[str, str]] = (0.0, {})

    # --- reference -------------------------------------------------------------------------------------------

    def entity_aliases(self) -> dict[str, str]:
        """Every legal entity's code, ERP id and seed id (`LE-<code>`) -> its code, cached briefly.

        Legal entities change a few times a year; an empty answer (no facts yet) is not cached.
        """
        at, aliases = self._aliases
        if aliases and time.monotonic() - at < self._alias_ttl:
            return aliases
        with self.engine.connect() as conn:
            aliases = entity_aliases(conn)
        self._aliases = (time.monotonic(), aliases)
        return aliases

    def latest_period(self, entities: Entities) -> str:
        """The latest period that has figures for these entities; this month when there are none."""
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(sa.func.max(fact_workers.c.period)).where(
                *_within(fact_workers, entities))).scalar()
        return str(found) if found else f"{utcnow():%Y-%m}"

    # --- 1, 2: utilization -----------------------------------------------------------------------------------

    def utilization(self, entities: Entities, period: str, practice: str | None) -> UtilizationReport:
        t = fact_workers
        query = (sa.select(t.c.legal_entity_code, t.c.practice, sa.func.sum(t.c.capacity), sa.func.sum(t.c.planned),
                           sa.func.sum(t.c.actual), sa.func.sum(t.c.billable))
                 .where(t.c.period == period, *_within(t, entities, practice))
                 .group_by(t.c.legal_entity_code, t.c.practice))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        total = [0, 0, 0, 0]
        by_practice: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        by_entity: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for entity, group_practice, *sums in rows:
            for i, value in enumerate(sums):
                units = int(value or 0)
                total[i] += units
                by_practice[group_practice][i] += units
                by_entity[entity][i] += units
        return UtilizationReport(
            period=period, totals=_figures(*total),
            by_practice=[UtilizationGroup(key=k, figures=_figures(*v)) for k, v in sorted(by_practice.items())],
            by_legal_entity=[UtilizationGroup(key=k, figures=_figures(*v)) for k, v in sorted(by_entity.items())])

    def worker_utilization(self, entities: Entities, period: str, practice: str | None, limit: int,
                           cursor: str | None) -> WorkerUtilizationPage:
        offset = decode_cursor(cursor, "dashboards.worker_utilization")
        t = fact_workers
        query = (sa.select(t.c.worker_id, sa.func.min(t.c.worker_entity), sa.func.min(t.c.practice),
                           sa.func.sum(t.c.capacity), sa.func.sum(t.c.planned), sa.func.sum(t.c.actual),
                           sa.func.sum(t.c.billable))
                 .where(t.c.period == period, *_within(t, entities, practice),
                        # a worker is listed under their employer: a consultant seconded from another entity counts
                        # in the host entity's totals, but their row is the employer's to see
                        *([] if entities is None else [t.c.worker_entity.in_(sorted(entities))]))
                 .group_by(t.c.worker_id).order_by(t.c.worker_id).limit(limit + 1).offset(offset))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        items = [WorkerUtilization(worker_id=w, legal_entity_code=e, practice=p,
                                   figures=_figures(int(c or 0), int(pl or 0), int(a or 0), int(b or 0)))
                 for w, e, p, c, pl, a, b in rows[:limit]]
        return WorkerUtilizationPage(items=items,
                                     next_cursor=_page_cursor(offset, limit, len(rows), "worker_utilization"))

    # --- 3: backlog ------------------------------------------------------------------------------------------

    def backlog(self, entities: Entities, period: str, practice: str | None, limit: int,
                cursor: str | None) -> tuple[BacklogPage, list[Figures]]:
        """Each project's contracted value less what was delivered up to `period`; and every project's contracted and
        delivered figures, what a group total adds (one read serves the page, the totals and the figures)."""
        offset = decode_cursor(cursor, "dashboards.backlog")
        c, f = fact_contracts, fact_projects
        delivered = (sa.select(f.c.project, sa.func.sum(f.c.revenue).label("delivered"))
                     .where(f.c.period <= period, *_within(f, entities)).group_by(f.c.project).subquery())
        query = (sa.select(c.c.project, c.c.legal_entity_code, c.c.practice, c.c.currency, c.c.contracted,
                           sa.func.coalesce(delivered.c.delivered, 0).label("delivered"))
                 .select_from(c.outerjoin(delivered, delivered.c.project == c.c.project))
                 .where(*_within(c, entities, practice)).order_by(c.c.project))
        with self.engine.connect() as conn:
            rows = [(p, e, pr, cur, int(k), int(d)) for p, e, pr, cur, k, d in conn.execute(query)]
        items = [ProjectBacklog(project=p, legal_entity_code=e, practice=pr, contracted=_money(k, cur),
                                delivered=_money(d, cur), remaining=_money(k - d, cur))
                 for p, e, pr, cur, k, d in rows[offset:offset + limit]]
        totals = [BacklogTotal(currency=cur, contracted=_money(k, cur), delivered=_money(d, cur),
                               remaining=_money(k - d, cur))
                  for cur, (k, d) in _sums([(cur, (k, d)) for _, _, _, cur, k, d in rows])]
        page = BacklogPage(items=items, next_cursor=_page_cursor(offset, limit, len(rows) - offset, "backlog"),
                           totals=totals)
        return page, [(p, e, cur, (k, d)) for p, e, _, cur, k, d in rows]

    # --- 4: invoice readiness --------------------------------------------------------------------------------

    def readiness(self, entities: Entities, period: str, practice: str | None, limit: int,
                  cursor: str | None) -> tuple[ReadinessPage, list[Figures]]:
        """What of each project's approved time can be invoiced now; and every project's approved unbilled, posted
        uninvoiced and drafted unposted figures, what a group total adds (one read serves page, totals and figures).

        The drafted totals are every draft of the caller's entities (and of the practice's projects, with
        `practice`) in a currency the totals list, whatever its project's readiness (as the per-currency totals
        always counted them); the group total adds the same drafts, those of a project not listed under their own
        key."""
        offset = decode_cursor(cursor, "dashboards.readiness")
        f = fact_projects
        query = (sa.select(f.c.project, f.c.legal_entity_code, f.c.practice, f.c.currency, f.c.unbilled_hours,
                           f.c.unbilled, f.c.posted_uninvoiced, f.c.held_hours, f.c.lines, f.c.oldest_date)
                 .where(f.c.period == period, *_within(f, entities, practice),
                        sa.or_(f.c.lines > 0, f.c.held_hours != 0)).order_by(f.c.project))
        with self.engine.connect() as conn:
            rows = [(p, e, pr, cur, int(uh), int(u), int(pu), int(h), int(n), oldest)
                    for p, e, pr, cur, uh, u, pu, h, n, oldest in conn.execute(query)]
            drafted = self._drafted(conn, entities, period, practice)
        items = [ProjectReadiness(project=p, legal_entity_code=e, practice=pr, approved_unbilled_hours=_hours(uh),
                                  approved_unbilled=_money(u, cur), posted_uninvoiced=_money(pu, cur),
                                  held_hours=_hours(h), lines=n, oldest_date=oldest,
                                  drafted_unposted=_money(drafted.get((p, e, cur), 0), cur))
                 for p, e, pr, cur, uh, u, pu, h, n, oldest in rows[offset:offset + limit]]
        sums = _sums([(cur, (uh, u, pu, h, n)) for _, _, _, cur, uh, u, pu, h, n, _ in rows])
        by_currency: dict[str, int] = defaultdict(int)
        for (_, _, cur), units in drafted.items():
            by_currency[cur] += units
        totals = [ReadinessTotal(currency=cur, approved_unbilled_hours=_hours(uh), approved_unbilled=_money(u, cur),
                                 posted_uninvoiced=_money(pu, cur), held_hours=_hours(h), lines=n,
                                 drafted_unposted=_money(by_currency[cur], cur))
                  for cur, (uh, u, pu, h, n) in sums]
        page = ReadinessPage(items=items, next_cursor=_page_cursor(offset, limit, len(rows) - offset, "readiness"),
                             totals=totals)
        return page, _readiness_figures(rows, drafted, {t.currency for t in totals})

    @staticmethod
    def _drafted(conn: sa.Connection, entities: Entities, period: str,
                 practice: str | None) -> dict[tuple[str, str, str], int]:
        """Drafts the ERP holds unposted, (project, legal entity, currency) -> units, over every project of the
        caller's entities (of the practice, with one: an invoice names no practice, its project's facts do): the
        page's items and the totals (one query)."""
        r, f = receivable_invoices, fact_projects
        where = [r.c.period == period, r.c.status.in_(UNPOSTED), *_within(r, entities)]
        if practice is not None:
            where.append(r.c.project.in_(sa.select(f.c.project).where(f.c.period == period, f.c.practice == practice)))
        query = (sa.select(r.c.project, r.c.legal_entity_code, r.c.currency, sa.func.sum(r.c.total))
                 .where(*where).group_by(r.c.project, r.c.legal_entity_code, r.c.currency))
        return {(p, e, cur): int(u or 0) for p, e, cur, u in conn.execute(query)}

    # --- 5: unbilled aging -----------------------------------------------------------------------------------

    def aging(self, entities: Entities, period: str, practice: str | None,
              as_of: dt.date) -> tuple[AgingReport, list[Figures]]:
        """Unbilled value of every period up to `period`, by the age of its work date at `as_of`; and each legal
        entity's amount per currency and bucket (keyed by the bucket, zeros too), what a group currency converts at
        that entity's rate and adds: a currency's bucket may span entities whose rates differ."""
        d = fact_unbilled_days
        query = (sa.select(d.c.legal_entity_code, d.c.currency, d.c.date, sa.func.sum(d.c.hours),
                           sa.func.sum(d.c.amount))
                 .where(d.c.period <= period, *_within(d, entities, practice))
                 .group_by(d.c.legal_entity_code, d.c.currency, d.c.date))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        sums: dict[tuple[str, str], list[int]] = {}
        parts: dict[tuple[str, str, str], int] = {}
        for entity, currency, day, hours, amount in rows:
            for bucket in AGING:
                sums.setdefault((currency, bucket), [0, 0])
                parts.setdefault((entity, currency, bucket), 0)
            bucket = _bucket((as_of - day).days)
            sums[(currency, bucket)][0] += int(hours or 0)
            sums[(currency, bucket)][1] += int(amount or 0)
            parts[(entity, currency, bucket)] += int(amount or 0)
        buckets = [AgingBucket(bucket=bucket, currency=currency, hours=_hours(h), amount=_money(a, currency))
                   for currency in sorted({c for c, _ in sums}) for bucket in AGING
                   for h, a in [sums[(currency, bucket)]]]
        figures: list[Figures] = [(bucket, entity, currency, (parts[(entity, currency, bucket)],))
                                  for entity, currency in sorted({(e, c) for e, c, _ in parts}) for bucket in AGING]
        return AgingReport(as_of=as_of, buckets=buckets), figures

    # --- 6: margin -------------------------------------------------------------------------------------------

    def margin(self, entities: Entities, period: str, practice: str | None, limit: int,
               cursor: str | None) -> tuple[MarginPage, list[Figures]]:
        """Revenue, cost and margin of each project in the period; and every project's revenue and cost, what a group
        total adds (one read serves the page, the totals and the figures)."""
        offset = decode_cursor(cursor, "dashboards.margin")
        f = fact_projects
        query = (sa.select(f.c.project, f.c.legal_entity_code, f.c.practice, f.c.currency, f.c.revenue, f.c.cost)
                 .where(f.c.period == period, *_within(f, entities, practice)).order_by(f.c.project))
        with self.engine.connect() as conn:
            rows = [(p, e, pr, cur, int(r or 0), int(c or 0)) for p, e, pr, cur, r, c in conn.execute(query)]
        items = [ProjectMargin(project=p, legal_entity_code=e, practice=pr, revenue=_money(r, cur),
                               cost=_money(c, cur), margin=_money(r - c, cur),
                               margin_ratio=ratio(from_units(r - c), from_units(r)))
                 for p, e, pr, cur, r, c in rows[offset:offset + limit]]
        totals = [MarginTotal(currency=cur, revenue=_money(r, cur), cost=_money(c, cur), margin=_money(r - c, cur),
                              margin_ratio=ratio(from_units(r - c), from_units(r)))
                  for cur, (r, c) in _sums([(cur, (r, c)) for _, _, _, cur, r, c in rows])]
        page = MarginPage(items=items, next_cursor=_page_cursor(offset, limit, len(rows) - offset, "margin"),
                          totals=totals)
        return page, [(p, e, cur, (r, c)) for p, e, _, cur, r, c in rows]

    # --- 9: work in progress --------------------------------------------------------------------------------

    def work_in_progress(self, entities: Entities, period: str, practice: str | None, limit: int,
                         cursor: str | None) -> tuple[WipPage, list[Figures]]:
        """Each project's revenue schedule at its latest period up to `period`: recognised, billed, the difference;
        and every project's recognised and billed figures, what a group total adds (one read serves both).

        A project's practice is the billing facts' (`fact_contracts`)."""
        offset = decode_cursor(cursor, "dashboards.wip")
        r = ttb_revenue
        where = [r.c.period <= period, *_within(r, entities)]
        if practice is not None:
            where.append(r.c.project.in_(sa.select(fact_contracts.c.project)
                                         .where(fact_contracts.c.practice == practice)))
        latest = (sa.select(r.c.project, sa.func.max(r.c.period).label("period"))
                  .where(*where).group_by(r.c.project).subquery())
        rows_query = (sa.select(r.c.project, r.c.legal_entity_code, r.c.method, r.c.currency, r.c.cumulative,
                                r.c.billed_cumulative, r.c.period)
                      .join(latest, sa.and_(r.c.project == latest.c.project, r.c.period == latest.c.period)))
        with self.engine.connect() as conn:
            rows = conn.execute(rows_query.order_by(r.c.project)).all()
        figures: list[Figures] = [(p, e, cur, (int(c), int(b))) for p, e, _, cur, c, b, _ in rows]
        items = [WipItem(project=p, legal_entity_code=e, method=m, recognised=_money(c, cur),
                         billed=_money(b, cur), work_in_progress=_money(int(c) - int(b), cur), as_of_period=at)
                 for p, e, m, cur, c, b, at in rows[offset:offset + limit]]
        page = WipPage(items=items, next_cursor=_page_cursor(offset, limit, len(rows) - offset, "wip"), totals=[
            WipTotal(currency=cur, recognised=_money(c, cur), billed=_money(b, cur),
                     work_in_progress=_money(c - b, cur))
            for cur, (c, b) in _sums([(cur, sums) for _, _, cur, sums in figures])])
        return page, figures

    # --- 7: sync health --------------------------------------------------------------------------------------

    def sync_health(self, entities: Entities) -> SyncHealth:
        """Open exceptions, failed runs and dead letters; a restricted caller sees only its entities' share.

        An exception belongs to a legal entity through its subject (`<project>:<reason>`, the
        project's entity) or its run (subject `<entity>:<period>`); a run through its subject.
        What cannot be attributed (provisioning of an opportunity, a `*` run) is shown to
        unrestricted callers only.
        """
        now = utcnow()
        queue = ExceptionQueue(self.engine)
        open_rows = queue.entries(status="open")
        health = queue.run_health(None if entities is None else [f"{code}:" for code in sorted(entities)])
        with self.engine.connect() as conn:
            attribution = Attribution(conn, entities)
            codes = sorted(entities) if entities is not None else entity_codes(conn)
            dead = failed_lines(conn, codes)
        by_reason: dict[str, int] = defaultdict(int)
        by_owner: dict[str, int] = defaultdict(int)
        by_age = dict.fromkeys(AGE_BUCKETS, 0)
        for row in open_rows:
            if not attribution.visible(row.subject, row.run_subject):
                continue
            by_reason[row.reason] += 1
            by_owner[row.owner] += 1
            by_age[_age_bucket(now - row.created_at)] += 1
        return SyncHealth(
            exceptions_by_reason=_counts(by_reason),
            exceptions_by_age=[Count(key=k, count=v) for k, v in by_age.items()],
            exceptions_by_owner=_counts(by_owner), failed_runs=[Count(key=p, count=n) for p, n in health.failed],
            dead_letters=dead,
            last_good_run=[FlowRun(process=p, run_id=i, finished_at=at) for p, i, at in health.last_good])


def _readiness_figures(rows: list[tuple[str, str, str, str, int, int, int, int, int, dt.date | None]],
                       drafted: dict[tuple[str, str, str], int], currencies: set[str]) -> list[Figures]:
    """Each readiness row's approved unbilled, posted uninvoiced and drafted unposted units under its project; then
    the drafts of projects not listed, under (project, entity, currency), in a currency the totals count."""
    listed = {(p, e, cur) for p, e, _, cur, *_ in rows}
    figures: list[Figures] = [(p, e, cur, (u, pu, drafted.get((p, e, cur), 0))) for p, e, _, cur, _, u, pu, *_ in rows]
    return figures + [((p, e, cur), e, cur, (0, 0, units)) for (p, e, cur), units in sorted(drafted.items())
                      if (p, e, cur) not in listed and cur in currencies]


def _bucket(days: int) -> AgingBucketName:
    if days <= 30:
        return "0-30"
    if days <= 60:
        return "31-60"
    if days <= 90:
        return "61-90"
    return "90+"


def _age_bucket(age: dt.timedelta) -> str:
    if age < dt.timedelta(hours=1):
        return "<1h"
    if age < dt.timedelta(days=1):
        return "1-24h"
    if age < dt.timedelta(days=7):
        return "1-7d"
    return ">7d"


def _counts(counts: dict[str, int]) -> list[Count]:
    return [Count(key=k, count=v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
