"""Dashboards benchmark: the billing-facts refresh and every widget at a 10,000-consultant firm's month-end.

    .venv/bin/python -m benchmarks.dashboards.run            # PostgreSQL (distributed mode's store)
    .venv/bin/python -m benchmarks.dashboards.run --database sqlite

Builds the month-end dataset of `benchmarks/time_to_bill` (`build_firm(10000)`, ~440,000
time entries in October 2026): the gateway starts with every simulator seeded with that firm;
the seeded entries are validated by the run's rules against reference data read through the
system APIs and written with `record_entries` → `Ledger.record` (the real write path), in
pages of 2,000 like the run. A full billing run is not repeated here (`benchmarks/time_to_bill`
times it); instead a month-end state mix is set on the ledger with two SQL updates: 80% of
validated lines posted (work dated up to 24 October), the posted lines of every second project invoiced.

Then it times `BillingFacts.refresh` per legal entity (twice: the second shows a refresh of
an unchanged slice costs the same and changes nothing), and calls every widget through the
ASGI app with a bearer token — the governed path: authentication, scopes, rate limit,
audit — `--calls` times each, over several filter combinations and a legal-entity-restricted
consumer, reporting p50/p99 per widget. Writes RESULTS.md beside this file.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["main"]

HERE = Path(__file__).parent
PERIOD = "2026-10"
TARGET_P99_MS = 50.0
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BASE = "/experience/dashboards/v1"
WIDGETS = ("/utilization", "/utilization/workers", "/backlog", "/invoice-readiness", "/unbilled-aging", "/margin",
           "/sync-health")
COMBOS: list[dict[str, str]] = [
    {}, {"period": PERIOD}, {"legal_entity": "US01"}, {"practice": "technology"},
    {"legal_entity": "UK01", "practice": "strategy", "period": PERIOD}, {"legal_entity": "DE01", "limit": "200"},
]


def _bindings_file() -> Path:
    """The published bindings plus two benchmark consumers on the internal plan (500/s), so limits never answer 429."""
    text = (Path(__file__).parent.parent.parent / "policies" / "gateway.yaml").read_text()
    marker = "consumers:\n"
    extra = "  bench-dashboards:\n    plan: internal\n  bench-dashboards-uk:\n    plan: internal\n"
    path = Path(tempfile.mkdtemp(prefix="bench-dash-")) / "gateway.yaml"
    path.write_text(text.replace(marker, marker + extra, 1))
    return path


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def _populate(gw: Any, firm: Any) -> dict[str, Any]:
    """Validate the firm's approved entries with the run's rules and record them through the ledger's write path."""
    import sqlalchemy as sa

    from contracts.common import Money
    from contracts.time import TimeEntry
    from process_apis.time_to_bill.enrich import load_reference
    from process_apis.time_to_bill.ledger import ledger
    from process_apis.time_to_bill.runtime import runtime
    from process_apis.time_to_bill.workflow import ALL_ENTITIES, record_entries
    from system_apis.demo_delivery import DEMO_PERIOD, defect_entries, time_entries
    from system_apis.demo_firm import ANCHOR_DATE

    rt = runtime()
    started = time.perf_counter()
    ref = await load_reference(rt.erp, rt.psa, rt.hr)
    reference_s = time.perf_counter() - started
    email = {w.id: w.email for w in firm.workers}
    currency = {p.external_id: p.currency for p in firm.projects}
    stamp = dt.datetime(2026, 11, 1, 18, tzinfo=dt.UTC)
    seeds = [*time_entries(firm.projects, firm.workers, *DEMO_PERIOD), *defect_entries(firm.projects, firm.workers)]
    entries = [TimeEntry(id=s.id, source="harvest", user_id=s.worker_id, user_email=email[s.worker_id],
                         project_code=s.project_external_id, date=s.date, hours=s.hours, billable=s.billable,
                         status=s.status, updated_at=stamp, task=s.task, approved_at=stamp,
                         billable_rate=Money(amount=s.billable_rate, currency=currency[s.project_external_id])
                         if s.billable_rate is not None else None) for s in seeds if s.status == "approved"]
    started = time.perf_counter()
    valid = failed = 0
    for i in range(0, len(entries), 2000):
        v, f = record_entries("bench_dashboards", entries[i:i + 2000], ref, ANCHOR_DATE, ALL_ENTITIES)
        valid, failed = valid + v, failed + f
    record_s = time.perf_counter() - started
    with gw.engine.begin() as conn:  # a month-end mix: most lines posted, half the projects invoiced
        conn.execute(ledger.update().where(ledger.c.state == "validated", ledger.c.date <= dt.date(2026, 10, 24))
                     .values(state="posted"))
        projects = sorted(ref.projects)[::2]
        conn.execute(ledger.update().where(ledger.c.state == "posted", ledger.c.project.in_(projects))
                     .values(state="invoiced", invoice_id="INV-BENCH"))
        counts = dict(conn.execute(sa.select(ledger.c.state, sa.func.count()).group_by(ledger.c.state)).all())
    return {"entries": len(entries), "validated": valid, "exceptions": failed, "reference_s": round(reference_s, 2),
            "record_s": round(record_s, 1), "ledger_states": {str(k): int(v) for k, v in counts.items()},
            "_ref": ref}


async def _token(gw: Any, http: Any, client_id: str, entities: list[str] | None) -> str:
    _, secret = gw.oauth.clients.create(client_id, ("experience.dashboards:read",), client_id=client_id,
                                        legal_entities=entities)
    answer = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    answer.raise_for_status()
    return str(answer.json()["access_token"])


async def _measure(gw: Any, calls: int) -> dict[str, Any]:
    import httpx

    out: dict[str, Any] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://bench") as http:
        tokens = [await _token(gw, http, "bench-dashboards", None),
                  await _token(gw, http, "bench-dashboards-uk", ["UK01"])]
        cursors: dict[str, str] = {}
        for path in WIDGETS:  # warm up and collect a third-page cursor for the lists
            for _ in range(5):
                answer = await http.get(BASE + path, params={"limit": "50"},
                                        headers={"Authorization": f"Bearer {tokens[0]}"})
                assert answer.status_code == 200, answer.text
            body = answer.json()
            if body.get("next_cursor"):
                second = await http.get(BASE + path, params={"limit": "50", "cursor": body["next_cursor"]},
                                        headers={"Authorization": f"Bearer {tokens[0]}"})
                cursors[path] = second.json().get("next_cursor") or ""
        for path in WIDGETS:
            samples: list[float] = []
            statuses: dict[int, int] = {}
            combos = [*COMBOS, *([{"cursor": cursors[path]}] if cursors.get(path) else [])]
            for n in range(calls):
                params = {k: v for k, v in combos[n % len(combos)].items()
                          if not (k == "limit" and path in ("/utilization", "/unbilled-aging", "/sync-health"))}
                token = tokens[1] if n % 5 == 4 else tokens[0]  # every fifth call by the UK01-restricted consumer
                if token is tokens[1]:
                    params.pop("legal_entity", None)
                started = time.perf_counter()
                answer = await http.get(BASE + path, params=params, headers={"Authorization": f"Bearer {token}"})
                samples.append((time.perf_counter() - started) * 1000)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            out[path] = {"calls": calls, "p50_ms": round(statistics.median(samples), 2),
                         "p99_ms": round(_percentile(samples, 0.99), 2), "max_ms": round(max(samples), 2),
                         "statuses": statuses}
    return out


async def _bench(database: str, workers: int, calls: int) -> dict[str, Any]:
    import sqlalchemy as sa
    from asgi_lifespan import LifespanManager

    from benchmarks.time_to_bill.run import _install_vendors
    from foundation.retry import RetryPolicy
    from gateway.app import create_gateway
    from gateway.settings import load_settings
    from policies.bindings import load_bindings
    from process_apis.time_to_bill.facts import BillingFacts

    t0 = time.perf_counter()
    firm = _install_vendors(workers)
    home = tempfile.mkdtemp(prefix="bench-dash-")
    overrides: dict[str, object] = {"home": home, "seed_demo": False}
    pg_name = None
    if database == "postgres":
        pg_name = f"psconnect_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{pg_name}"'))
        overrides["database_url"] = f"postgresql://postgres@127.0.0.1:5432/{pg_name}"
    retry = RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.1, max_retry_after=0.5)
    out: dict[str, Any] = {"database": database, "workers": workers}
    try:
        gw = create_gateway(load_settings(env={}, **overrides), bindings=load_bindings(_bindings_file()), retry=retry)
        async with LifespanManager(gw.app, startup_timeout=600, shutdown_timeout=60):  # type: ignore[arg-type]
            out["setup_s"] = round(time.perf_counter() - t0, 1)
            populated = await _populate(gw, firm)
            ref = populated.pop("_ref")
            out.update(populated)
            facts = BillingFacts(gw.engine)
            refresh: dict[str, Any] = {}
            for attempt in ("first", "again"):
                started = time.perf_counter()
                outcomes = [facts.refresh(ref, entity, PERIOD) for entity in sorted(ref.entity_currency)]
                refresh[attempt] = {"total_s": round(time.perf_counter() - started, 2),
                                    "slices": [{"entity": o.legal_entity_code, "ledger_rows": o.ledger_rows,
                                                "workers": o.workers, "projects": o.projects, "s": o.seconds}
                                               for o in outcomes]}
            out["refresh"] = refresh
            out["widgets"] = await _measure(gw, calls)
    finally:
        if pg_name:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
            admin.dispose()
    return out


def _results_md(r: dict[str, Any], command: str) -> str:
    lines = [
        "# Dashboards benchmark", "",
        f"Command: `{command}`", "",
        f"Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}, {platform.system()}; a shared, noisy 2-core box — other sessions were running "
        "tests at the same time, so treat times as upper bounds.", "",
        f"Dataset: {r['workers']} workers, {r['entries']} approved entries recorded through `Ledger.record` "
        f"({r['validated']} validated, {r['exceptions']} held in exceptions) in {r['record_s']} s; ledger states "
        f"after the month-end mix: {r['ledger_states']}. Store: {r['database']}.", "",
        "## Refresh (`BillingFacts.refresh`, one legal entity x October, one transaction each)", "",
        "| pass | entity | ledger rows | worker rows | project rows | seconds |", "|---|---|---|---|---|---|",
    ]
    for attempt, data in r["refresh"].items():
        for s in data["slices"]:
            lines.append(f"| {attempt} | {s['entity']} | {s['ledger_rows']} | {s['workers']} | {s['projects']} "
                         f"| {s['s']} |")
        lines.append(f"| {attempt} | all | | | | {data['total_s']} |")
    lines += ["", f"## Widgets (governed path, ASGI in-process; target p99 ≤ {TARGET_P99_MS:.0f} ms)", "",
              "| widget | calls | p50 ms | p99 ms | max ms | statuses | p99 target |", "|---|---|---|---|---|---|---|"]
    for path, w in r["widgets"].items():
        verdict = "met" if w["p99_ms"] <= TARGET_P99_MS else "NOT met"
        lines.append(f"| {path} | {w['calls']} | {w['p50_ms']} | {w['p99_ms']} | {w['max_ms']} | {w['statuses']} "
                     f"| {verdict} |")
    lines += ["", "Filter combinations cycled per widget: " + json.dumps(COMBOS) + " plus a third-page cursor on "
              "lists; every fifth call is made by a consumer restricted to UK01.", "",
              "Raw results:", "", "```json", json.dumps(r, indent=2), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--workers", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--no-write", action="store_true", help="do not rewrite RESULTS.md")
    args = parser.parse_args(argv)
    result = asyncio.run(_bench(args.database, args.workers, args.calls))
    print(json.dumps(result), flush=True)
    if not args.no_write:
        command = ".venv/bin/python -m benchmarks.dashboards.run" + \
            ("" if args.database == "postgres" else " --database sqlite")
        (HERE / "RESULTS.md").write_text(_results_md(result, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
