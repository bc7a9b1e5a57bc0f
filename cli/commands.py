"""`psconnect billing run|reconcile` and `psconnect workers sync`: process runs started like a client would.

Each command calls the process API through a running gateway (never an embedded one
started for the command: its empty ledger would make every answer meaningless), then
follows the run's own resource until it ends, printing each step's progress as it moves, so a month-end
run shows where it is and what it has done.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from cli.client_session import ApiClient, say, with_gateway

__all__ = ["billing_reconcile", "billing_run", "workers_sync"]

TTB = "/process/time-to-bill/v1"


async def billing_run(base_url: str, legal_entity: str, period: str, client_id: str | None = None,
                      client_secret: str | None = None) -> int:
    async def body(api: ApiClient, url: str) -> int:
        run = await start_billing(api, legal_entity, period)
        say(f"billing run {run['id']} for {legal_entity} {period} against {url}")
        run = await api.wait(run, f"{TTB}/billing-runs/{run['id']}")
        say(f"run {run['status']}" + (f" — exception {run['exception_id']}" if run.get("exception_id") else ""))
        return 0 if run["status"] == "succeeded" else 1

    return await with_gateway(base_url, client_id, client_secret, body)


async def start_billing(api: ApiClient, legal_entity: str, period: str) -> dict[str, Any]:
    run: dict[str, Any] = await api.call("POST", f"{TTB}/billing-runs",
                                         json={"legal_entity_code": legal_entity, "period": period},
                                         headers={"Idempotency-Key": str(uuid.uuid4())})
    return run


async def reconciliation(api: ApiClient, period: str, *, project: str | None = None,
                         legal_entity: str | None = None) -> list[dict[str, Any]]:
    return await api.items(f"{TTB}/reconciliation", {"period": period, **({"project": project} if project else {}),
                                                     **({"legal_entity_code": legal_entity} if legal_entity else {})})


def print_reconciliation(rows: list[dict[str, Any]]) -> int:
    """A table of approved vs posted vs invoiced per project — time, expenses (cost posted, billed with markup) and
    seconded consultants' intercompany charges; returns the number of discrepant projects."""
    say(f"    {'project':<12} {'cur':<4} {'approved h':>10} {'approved':>12} {'posted':>12} {'invoiced':>12} "
        f"{'credited':>10} {'held':>5} {'exp. cost':>10} {'exp. posted':>11} {'exp. billed':>11} "
        "intercompany  discrepancies")
    bad = 0
    for r in rows:
        issues = "; ".join(r["discrepancies"]) or "none"
        bad += bool(r["discrepancies"])
        billed = Decimal(r["invoiced_expense_amount"]) + Decimal(r["credited_expense_amount"])
        say(f"    {r['project']:<12} {r['currency']:<4} {r['approved_hours']:>10} {r['approved_amount']:>12} "
            f"{r['posted_amount']:>12} {r['invoiced_amount']:>12} {r['credited_amount']:>10} "
            f"{r['held_in_exceptions'] + r['expenses_held']:>5} {r['approved_expense_cost']:>10} "
            f"{r['posted_expense_cost']:>11} {billed:>11} {_charges(r['intercompany']):<12}  {issues}")
    say(f"    {len(rows)} projects, {bad} with discrepancies")
    return bad


def _charges(figures: list[dict[str, Any]]) -> str:
    return ", ".join(f"{f['expected']} {f['currency']} from {f['employer']}" for f in figures) or "-"


async def billing_reconcile(base_url: str, period: str, *, project: str | None, legal_entity: str | None,
                            client_id: str | None = None, client_secret: str | None = None) -> int:
    async def body(api: ApiClient, url: str) -> int:
        rows = await reconciliation(api, period, project=project, legal_entity=legal_entity)
        say(f"reconciliation {period} ({project or legal_entity}) against {url}")
        return 1 if print_reconciliation(rows) else 0

    return await with_gateway(base_url, client_id, client_secret, body)


async def workers_sync(base_url: str, *, full: bool, client_id: str | None = None,
                       client_secret: str | None = None) -> int:
    return await _full_or_changes(base_url, "/process/worker-sync/v1", "worker sync", full, client_id, client_secret)


async def receivables_poll(base_url: str, *, full: bool, client_id: str | None = None,
                           client_secret: str | None = None) -> int:
    return await _full_or_changes(base_url, "/process/receivables/v1", "receivables poll", full, client_id,
                                  client_secret)


async def _full_or_changes(base_url: str, base: str, what: str, full: bool, client_id: str | None,
                           client_secret: str | None) -> int:
    """Start a process run that reads changes (or everything), follow its steps, exit 0 only if it succeeded."""
    async def body(api: ApiClient, url: str) -> int:
        run = await api.call("POST", f"{base}/runs", json={"full": full},
                             headers={"Idempotency-Key": str(uuid.uuid4())})
        say(f"{what} {run['id']} ({'full' if full else 'changes only'}) against {url}")
        run = await api.wait(run, f"{base}/runs/{run['id']}")
        say(f"run {run['status']}")
        return 0 if run["status"] == "succeeded" else 1

    return await with_gateway(base_url, client_id, client_secret, body)
