"""Month-end time-to-bill benchmark: a 10,000-consultant firm's October, time system to posted ERP time and invoices.

    make bench-ttb      # or: .venv/bin/python -m benchmarks.time_to_bill.run --workers 10000

Embedded mode: one process holds the gateway, its process runtime and the five vendor
simulators, each seeded with `build_firm(workers)` (Harvest with its rate limit off). A
`*` billing run for DEMO_PERIOD reads ~440,000 approved entries and ~44,000 expenses (one
per worker per week) through the time system API, validates them into the ledger, posts the
time to NetSuite in async batches and the expenses as project costs, and drafts the invoices.
Each scenario runs in its own subprocess, so its peak RSS is its own:

- `clean`: the run as is;
- `time_only`: the same firm with no expenses in Harvest (the run before expenses were billed);
- `faults`: the same with 5% NetSuite 5xx and 5% 429 (Retry-After 0);
- `floor`: the same entries decoded from Harvest's wire JSON, mapped, validated by the same
  rules and written to SQLite with executemany — the least any implementation must do.

Reports wall time, entries/s, peak RSS, duplicates and reconciliation; writes RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

HERE = Path(__file__).parent
PERIOD = "2026-10"
TARGET_WALL, TARGET_FAULT_WALL, TARGET_RSS_MB, TARGET_RECONCILE = 60.0, 90.0, 1536.0, 20.0
SCENARIOS = ("floor", "clean", "time_only", "faults", "postgres")
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CollectorClock:
    """Seconds the cyclic garbage collector has run in this process, and how many full collections it made."""

    def __init__(self) -> None:
        self.seconds, self.full, self._started = 0.0, 0, 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._started
        self.full += info["generation"] == 2


def _install_vendors(workers: int, expenses: bool = True) -> Any:
    """Seed every simulator with the benchmark firm (the gateway builds its simulators from the vendor registry)."""
    import dataclasses

    from system_apis import registry
    from system_apis.demo_firm import build_firm
    from system_apis.harvest.simulator import HarvestSimulator
    from system_apis.kantata.simulator import KantataSimulator
    from system_apis.netsuite.simulator import NetSuiteSimulator
    from system_apis.workday.simulator import WorkdaySimulator

    firm = build_firm(workers)
    makers: dict[str, Any] = {
        "harvest": lambda: HarvestSimulator(firm=firm, requests_per_window=None, report_requests_per_window=None,
                                            seed_expenses=expenses),
        "netsuite": lambda: NetSuiteSimulator(firm=firm),
        "kantata": lambda: KantataSimulator(firm=firm),
        "workday": lambda: WorkdaySimulator(firm=firm),
    }
    for package in registry.installed():
        if package.name in makers:
            registry.register(dataclasses.replace(package, simulator=makers[package.name]))
    return firm


def _unpaced_connections(home: str) -> str:
    """The shipped connections file with Harvest's account unpaced (no 100-per-15-s client budget): the benchmark
    measures our cost, not Harvest's quota."""
    import msgspec

    from system_apis.connections import DEFAULT_FILE

    doc = msgspec.yaml.decode(DEFAULT_FILE.read_bytes())
    for connection in doc["connections"].values():
        if connection["vendor"] == "harvest":
            connection["pacing"] = False
    path = Path(home) / "connections.yaml"
    path.write_bytes(msgspec.yaml.encode(doc))
    return str(path)


async def _scenario(name: str, workers: int, database_url: str | None = None,
                    reconcile: bool = True) -> dict[str, Any]:
    from asgi_lifespan import LifespanManager

    from foundation.retry import RetryPolicy
    from gateway.app import create_gateway, settle_heap
    from gateway.settings import load_settings
    from system_apis._internal.faults import Fault
    from system_apis.demo_firm import ANCHOR_DATE

    t0 = time.perf_counter()
    _install_vendors(workers, expenses=name != "time_only")
    home = tempfile.mkdtemp(prefix="bench-ttb-")
    retry = RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.1, max_retry_after=0.5)
    vendor_retry = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=0.2)
    overrides: dict[str, object] = {"home": home, "seed_demo": False, "connections_file": _unpaced_connections(home)}
    if database_url:
        overrides["database_url"] = database_url
    gw = create_gateway(load_settings(env={}, **overrides), retry=retry, vendor_retry=vendor_retry)
    out: dict[str, Any] = {"scenario": name, "workers": workers,
                           "database": "postgresql" if database_url else "sqlite"}
    async with LifespanManager(gw.app, startup_timeout=600, shutdown_timeout=60):  # type: ignore[arg-type]
        harvest = gw.vendors["time"].simulator
        erp = gw.vendors["erp"].simulator
        assert harvest is not None and erp is not None
        out["entries_seeded"] = harvest.count("time_entry", None)
        # As the server's workers do after start-up (gateway.app.freeze_heap_after_startup): here the frozen heap
        # also holds the seeded simulators, which in production are the vendors' own processes, not ours.
        settle_heap()
        out["setup_s"] = round(time.perf_counter() - t0, 1)
        out["rss_after_setup_mb"] = round(peak_rss_mb())
        service = gw.processes.service("time_to_bill")
        service.as_of = ANCHOR_DATE
        if name == "floor":
            out.update(await _floor(gw, harvest))
        else:
            if name == "faults":
                erp.faults.add(Fault(kind="server_error", rate=0.05))
                erp.faults.add(Fault(kind="rate_limit", rate=0.05, retry_after=0))
            load_before = os.getloadavg()[0]
            collector = CollectorClock()
            started, cpu_started = time.perf_counter(), time.process_time()
            run = await service.run_and_wait("*", PERIOD)
            wall = time.perf_counter() - started
            out["cpu_s"] = round(time.process_time() - cpu_started, 1)
            run_gc = collector.seconds
            out["gc_s"], out["gc_full_collections"] = round(run_gc, 1), collector.full
            out["load_avg"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]  # 1-min, before and after
            erp.faults.clear()
            result = dict(run.result or {})
            read = int(result.get("entries_read", 0))
            out.update(status=run.status, wall_s=round(wall, 1), entries_read=read,
                       entries_per_s=round(read / wall), posted=int(result.get("posted", 0)),
                       exceptions=int(result.get("exceptions", 0)),
                       expenses_read=int(result.get("expenses_read", 0)),
                       expenses_posted=int(result.get("expenses_posted", 0)),
                       expense_exceptions=int(result.get("expense_exceptions", 0)),
                       invoice_documents=int(result.get("invoice_documents", 0)),
                       faults_injected=erp.faults.injected,
                       **{f"{step}_s": round((s.duration_ms or 0) / 1000, 1) for s in run.steps
                          for step in ("post_time", "invoice", "read_validate", "read_expenses", "post_expenses")
                          if s.name == step})
            keys = collections.Counter(b.key for b in erp.ledger.bills)  # type: ignore[attr-defined]
            out["time_bills"] = len(erp.ledger.bills)  # type: ignore[attr-defined]
            out["duplicate_time_bills"] = sum(n - 1 for n in keys.values() if n > 1)
            if reconcile:
                rec_started = time.perf_counter()
                recs, _ = await service.reconcile_entity("*", PERIOD)
                out["reconcile_s"] = round(time.perf_counter() - rec_started, 1)
                out["reconcile_gc_s"] = round(collector.seconds - run_gc, 1)
                out["projects"] = len(recs)
                out["projects_with_discrepancies"] = sum(1 for r in recs if r.discrepancies)
        out["peak_rss_mb"] = round(peak_rss_mb())
    return out


async def _floor(gw: Any, harvest: Any) -> dict[str, Any]:
    """Decode Harvest's wire pages, map, validate with the run's rules, write to SQLite: nothing else."""
    import httpx
    import msgspec

    from process_apis.time_to_bill.enrich import load_reference
    from process_apis.time_to_bill.rules import PricedLine, validate
    from process_apis.time_to_bill.runtime import runtime
    from process_apis.time_to_bill.workflow import _window
    from system_apis.demo_firm import ANCHOR_DATE
    from system_apis.harvest import _wire as wire
    from system_apis.harvest.mapping import time_entry_to_canonical

    rt = runtime()
    start, end = _window(PERIOD)  # the window the run reads
    ref = await load_reference(rt.erp, rt.psa, rt.hr)
    headers = {"Authorization": "Bearer sim-token", "Harvest-Account-Id": "1", "User-Agent": "bench"}
    pages: list[bytes] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=harvest.app), base_url="https://api.harvestapp.com",
                                 timeout=120) as http:
        users = {u["id"]: u["email"] for u in await _all(http, headers, "users")}
        projects = {p["id"]: (p["code"], ref.projects[p["code"]].currency if p["code"] in ref.projects else "USD")
                    for p in await _all(http, headers, "projects")}
        page = 1
        while True:  # untimed: the simulator renders the wire pages
            answer = await http.get("/v2/time_entries", headers=headers, params={
                "is_running": "false", "from": start.isoformat(), "to": end.isoformat(), "per_page": 2000,
                "page": page})
            answer.raise_for_status()
            pages.append(answer.content)
            page = answer.json()["next_page"]
            if not page:
                break
    db = sqlite3.connect(":memory:")
    db.execute("create table ledger (line_key text primary key, entry_id text, project text, worker text, "
               "date text, hours text, rate text, amount text, state text)")
    decoder = msgspec.json.Decoder(wire.TimeEntriesPage)
    started = time.perf_counter()
    read = valid = 0
    for body in pages:
        rows = []
        for w in decoder.decode(body).time_entries:
            code, currency = projects[w.project.id]
            entry = time_entry_to_canonical(w, user_email=users[w.user.id], project_code=code, currency=currency)
            if entry.status != "approved":
                continue
            read += 1
            result = validate(entry, ref, ANCHOR_DATE)
            if isinstance(result, PricedLine):
                valid += 1
                rows.append((f"{entry.id}:{entry.updated_at}", entry.id, code, entry.user_email, entry.date.isoformat(),
                             str(entry.hours), str(result.rate), str(result.amount), "validated"))
            else:
                rows.append((f"{entry.id}:{entry.updated_at}", entry.id, code, entry.user_email, entry.date.isoformat(),
                             str(entry.hours), "0", "0", result[0].code))
        db.executemany("insert or replace into ledger values (?,?,?,?,?,?,?,?,?)", rows)
        db.commit()
    wall = time.perf_counter() - started
    return {"wall_s": round(wall, 2), "entries_read": read, "validated": valid,
            "entries_per_s": round(read / wall), "pages": len(pages)}


async def _all(http: Any, headers: dict[str, str], kind: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page: int | None = 1
    while page:
        answer = await http.get(f"/v2/{kind}", headers=headers, params={"per_page": 2000, "page": page})
        answer.raise_for_status()
        body = answer.json()
        items += body[kind]
        page = body["next_page"]
    return items


def _child(name: str, workers: int, *extra: str) -> dict[str, Any]:
    """Run one scenario in a fresh interpreter; its last stdout line is the JSON result."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.time_to_bill.run", "--scenario", name,
                           "--workers", str(workers), *extra], capture_output=True, text=True,
                          cwd=HERE.parent.parent, env={**os.environ, "PYTHONHASHSEED": "0"})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{"scenario"')]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"scenario {name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _postgres_child(workers: int, admin_url: str) -> dict[str, Any]:
    """The clean scenario on a throw-away PostgreSQL database (ledger, runs and DBOS's system tables)."""
    import uuid

    import sqlalchemy as sa

    name = f"psconnect_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin_url.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://") + f"/{name}"
        result = _child("clean", workers, "--database-url", url)
        result["scenario"] = "postgres"
        return result
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _scaling(counts: list[int]) -> dict[str, Any]:
    """The clean run (no reconciliation) at each worker count, each in its own process: is it linear?"""
    line = {str(n): _child("clean", n, "--no-reconcile") for n in counts}
    for n, r in line.items():
        print(json.dumps({"scaling": n, **r}), flush=True)
    return line


def _verdict(value: float | None, target: float) -> str:
    if value is None:
        return "not run"
    return f"{'met' if value <= target else 'NOT met'} ({value / target:.0%} of target)"


def _scaling_md(line: dict[str, dict[str, Any]]) -> list[str]:
    if not line:
        return []
    out = ["## Scaling line (clean, no reconciliation; each worker count in its own process)", "",
           "| workers | entries read | wall s | read+validate s | posting s | invoicing s | CPU s | peak RSS MB "
           "| load avg (before, after) |", "|---|---|---|---|---|---|---|---|---|"]
    for n, r in line.items():
        out.append(f"| {int(n):,} | {r['entries_read']} | {r['wall_s']} | {r.get('read_validate_s')} | "
                   f"{r.get('post_time_s')} | {r.get('invoice_s')} | {r.get('cpu_s')} | {r['peak_rss_mb']} | "
                   f"{', '.join(str(x) for x in r.get('load_avg', []))} |")
    counts = sorted(line, key=int)
    low, high = line[counts[0]], line[counts[-1]]
    factor = int(counts[-1]) / int(counts[0])
    out += ["", f"- wall({int(counts[-1]):,}) / wall({int(counts[0]):,}) = {high['wall_s'] / low['wall_s']:.2f} "
            f"(linear: {factor:.1f}; target ≤ {factor * 1.1:.1f}); CPU ratio "
            f"{high['cpu_s'] / low['cpu_s']:.2f} (CPU time is less disturbed by the other sessions on the box)", ""]
    return out


def _results_md(results: dict[str, Any], command: str) -> str:
    clean, faults, floor = results.get("clean", {}), results.get("faults", {}), results.get("floor", {})
    lines = [
        "# Time-to-bill month-end benchmark", "",
        f"Command: `{command}` (each scenario in its own process; `--scenario clean|faults|floor` runs one; "
        "`--only` picks scenarios, `--scaling ''` skips the scaling line).", "",
        f"Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}, {platform.system()}; a shared, noisy 2-core box — other sessions were "
        "running tests and benchmarks at the same time (see the load averages), so treat wall times as upper "
        "bounds and prefer the ratios and CPU seconds.", "",
        "Harvest's client normally paces itself to Harvest's published 100 requests / 15 s "
        "(`system_apis/pacing.py`); the benchmark, like the time-to-bill test stack, swaps in an unpaced Harvest "
        "router and an unlimited simulator: it measures our cost, not Harvest's quota.", "",
    ]
    lines += _scaling_md(results.get("scaling", {}))
    lines += ["## Month-end run", "",
              "| scenario | database | entries read | expenses read | wall s | posting s (time, expenses) "
              "| invoicing s | CPU s | entries/s | peak RSS MB | posted (time, expenses) | exceptions (time, expenses) "
              "| invoice docs | dup. timeBills | reconcile s | projects w/ discrepancies | faults injected |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("clean", "time_only", "faults", "postgres"):
        r = results.get(name)
        if r:
            lines.append(f"| {name} | {r.get('database', 'sqlite')} | {r['entries_read']} | {r.get('expenses_read')} "
                         f"| {r['wall_s']} | {r.get('post_time_s')}, {r.get('post_expenses_s', '–')} | "
                         f"{r.get('invoice_s')} | {r.get('cpu_s')} | {r['entries_per_s']} | {r['peak_rss_mb']} | "
                         f"{r['posted']}, {r.get('expenses_posted')} | {r['exceptions']}, "
                         f"{r.get('expense_exceptions')} | {r['invoice_documents']} | {r['duplicate_time_bills']} | "
                         f"{r.get('reconcile_s')} | {r.get('projects_with_discrepancies')}/{r.get('projects')} | "
                         f"{r['faults_injected']} |")
    if floor:
        lines.append(f"| floor (decode+validate+SQLite) | sqlite | {floor['entries_read']} | – | {floor['wall_s']} | – "
                     f"| – | – | {floor['entries_per_s']} | {floor['peak_rss_mb']} | – | – | – | – | – | – | – |")
    lines += ["", "Targets:",
              f"- clean run ≤ {TARGET_WALL:.0f} s: {_verdict(clean.get('wall_s'), TARGET_WALL)}",
              f"- faulted run ≤ {TARGET_FAULT_WALL:.0f} s: {_verdict(faults.get('wall_s'), TARGET_FAULT_WALL)}",
              f"- peak RSS ≤ {TARGET_RSS_MB:.0f} MB (clean): {_verdict(clean.get('peak_rss_mb'), TARGET_RSS_MB)}",
              f"- reconciliation of every project ≤ {TARGET_RECONCILE:.0f} s (clean): "
              f"{_verdict(clean.get('reconcile_s'), TARGET_RECONCILE)}"]
    if clean and floor:
        lines.append(f"- run / floor wall ratio: {clean['wall_s'] / max(floor['wall_s'], 0.01):.1f}x")
    time_only = results.get("time_only", {})
    if clean and time_only:
        lines.append(f"- expenses' cost (clean with {clean.get('expenses_read')} expenses / time_only, same run): "
                     f"wall {clean['wall_s'] / max(time_only['wall_s'], 0.01):.2f}x, CPU "
                     f"{clean['cpu_s'] / max(time_only['cpu_s'], 0.01):.2f}x")
    runs = {n: r for n, r in results.items() if n != "scaling"}
    lines += ["", "Setup (seeding the five simulators with the firm, gateway start-up), not in the wall times: "
              + ", ".join(f"{n} {r.get('setup_s')} s (RSS after setup {r.get('rss_after_setup_mb')} MB)"
                          for n, r in runs.items()), "",
              "Raw results:", "", "```json", json.dumps(results, indent=2), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=10_000)
    parser.add_argument("--scenario", choices=("clean", "time_only", "faults", "floor"))
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--scaling", default="1000,2000,4000",
                        help="worker counts of the scaling line, comma-separated ('' skips it)")
    parser.add_argument("--postgres-admin-url", default=os.environ.get("PSCONNECT_BENCH_PG_ADMIN", PG_ADMIN_URL),
                        help="server on which the postgres scenario creates (and drops) its own database")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite RESULTS.md")
    parser.add_argument("--database-url", help="run a scenario on this database (default: SQLite under a temp home)")
    parser.add_argument("--no-reconcile", action="store_true", help="skip reconciling every project afterwards")
    args = parser.parse_args(argv)
    if args.scenario:
        print(json.dumps(asyncio.run(_scenario(args.scenario, args.workers, args.database_url,
                                               not args.no_reconcile))), flush=True)
        return 0
    results: dict[str, Any] = {}
    counts = [int(n) for n in args.scaling.split(",") if n.strip()]
    if counts:
        results["scaling"] = _scaling(counts)
    command = f".venv/bin/python -m benchmarks.time_to_bill.run --workers {args.workers}"
    for name in [None, *args.only]:  # RESULTS.md after each scenario: an interrupted run still leaves its figures
        if name is not None:
            results[name] = (_postgres_child(args.workers, args.postgres_admin_url) if name == "postgres"
                             else _child(name, args.workers))
            print(json.dumps(results[name]), flush=True)
        if not args.no_write and results:
            (HERE / "RESULTS.md").write_text(_results_md(results, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
