"""A running stack for time-to-bill tests: the gateway with every simulator, the demo calendar, run helpers.

Not a conftest: imported explicitly, like tests/stack.py. `connections_file()` writes the stack's
connections file: the shipped one with every time account unpaced and its simulator's rate limit off
(a connection setting; tests must not wait out 15 s windows), and entities moved between accounts
as a test asks (the swap test).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from foundation.retry import RetryPolicy
from process_apis.time_to_bill.ledger import ledger
from system_apis.demo_firm import ANCHOR_DATE
from tests.stack import ERP_ACCOUNTS, FAST_RETRY, Stack, running_stack
from tests.stack import connections_file as stack_connections

__all__ = ["BASE", "PERIOD", "TERMINAL", "TtbStack", "connections_file", "misprice", "mispriced", "ttb_stack"]

BASE = "/process/time-to-bill/v1"
PERIOD = "2026-10"
TERMINAL = {"succeeded", "needs_attention", "failed"}
TIME_VENDORS = frozenset({"harvest"})
UNLIMITED = {"requests_per_window": None, "report_requests_per_window": None}
"""The time simulators' constructor options that switch their rate limits off."""


def connections_file(home: Path, *, accounts: dict[str, dict[str, Any]] | None = None,
                     routes: dict[str, dict[str, str]] | None = None) -> Path:
    """The shipped connections file with every time account unpaced (client and simulator), plus `accounts`
    (more connections) and `routes` (entity -> {domain: connection}, replacing an entity's entry's domains)."""
    return stack_connections(home, accounts=accounts, routes=routes, unpaced=TIME_VENDORS, unlimited=UNLIMITED)


@dataclass
class TtbStack:
    stack: Stack

    @property
    def http(self) -> Any:
        return self.stack.http

    def sim(self, domain: str) -> Any:
        return self.stack.sim(domain)

    @property
    def engine(self) -> sa.Engine:
        return self.stack.gateway.engine

    async def start(self, entity: str, period: str = PERIOD, key: str | None = None) -> dict[str, Any]:
        response = await self.http.post(f"{BASE}/billing-runs", json={"legal_entity_code": entity, "period": period},
                                        headers={"Idempotency-Key": key or str(uuid.uuid4())})
        assert response.status_code in (200, 202), response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait(self, run_id: str, attempt: int | None = None, within: float = 120.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            run: dict[str, Any] = (await self.http.get(f"{BASE}/billing-runs/{run_id}")).json()
            if run["status"] in TERMINAL and (attempt is None or run["attempt"] >= attempt):
                return run
            if loop.time() > deadline:
                raise AssertionError(f"billing run {run_id} still {run['status']}: {run['steps']}")
            await asyncio.sleep(0.05)

    async def bill(self, entity: str, period: str = PERIOD) -> dict[str, Any]:
        started = await self.start(entity, period)
        return await self.wait(started["id"], started["attempt"])

    async def exceptions(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.http.get(f"{BASE}/exceptions", params={"limit": 200, **params})
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def reconcile(self, *, project: str | None = None, entity: str | None = None,
                        period: str = PERIOD) -> list[dict[str, Any]]:
        params = {"period": period, **({"project": project} if project else {}),
                  **({"legal_entity_code": entity} if entity else {})}
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            for _ in range(20):  # a client honours Retry-After while the ERP's breaker cools down
                response = await self.http.get(f"{BASE}/reconciliation", params={
                    **params, "limit": 200, **({"cursor": cursor} if cursor else {})})
                if response.status_code != 503:
                    break
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
            assert response.status_code == 200, response.text
            out += response.json()["items"]
            cursor = response.json()["next_cursor"]
            if not cursor:
                return out

    def time_bills(self) -> list[Any]:
        """Every timeBill the NetSuite accounts' simulators hold (the firm's own account first): the home entities'
        posted time, entry by entry. The acquired entities' ERPs (Business Central, Xero) are checked through the
        ERP contract and reconciliation instead."""
        accounts = self.stack.gateway.vendors["erp"].connections.values()
        netsuite = [a.simulator for a in accounts if a.simulator is not None and a.entry.package.name == "netsuite"]
        return [bill for simulator in netsuite for bill in simulator.ledger.bills]

    def ledger_rows(self, **where: Any) -> list[dict[str, Any]]:
        query = sa.select(ledger).where(*(ledger.c[k] == v for k, v in where.items()))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    async def posted(self, entity: str, project: str | None = None) -> list[dict[str, Any]]:
        """October's time as the entity's ERP account lists it through the ERP contract, every page (reversals
        negative; an account shared by several entities lists all of theirs)."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"legal_entity": entity, "from": f"{PERIOD}-01", "to": f"{PERIOD}-31",
                                  "limit": 1000, **({"project_external_id": project} if project else {})}
        while True:
            response = await self.http.get("/system/erp/v1/posted-time", params=params)
            assert response.status_code == 200, response.text
            items += response.json()["items"]
            if not response.json().get("next_cursor"):
                return items
            params["cursor"] = response.json()["next_cursor"]

    async def posted_expenses(self, entity: str, project: str | None = None) -> list[dict[str, Any]]:
        """October's expense costs as the entity's ERP account lists them through the ERP contract, every page."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"legal_entity": entity, "from": f"{PERIOD}-01", "to": f"{PERIOD}-31",
                                  "limit": 1000, **({"project_external_id": project} if project else {})}
        while True:
            response = await self.http.get("/system/erp/v1/posted-expenses", params=params)
            assert response.status_code == 200, response.text
            items += response.json()["items"]
            if not response.json().get("next_cursor"):
                return items
            params["cursor"] = response.json()["next_cursor"]

    async def posted_hours(self, entry_id: str) -> Decimal:
        """Net hours the ERP holds for one time entry (postings and reversals), read through the ERP contract."""
        rows = self.ledger_rows(entry_id=entry_id)
        if not rows:
            return Decimal(0)
        keys = {r["line_key"] for r in rows}
        lines = await self.posted(rows[0]["legal_entity_code"], rows[0]["project"])
        return sum((Decimal(p["hours"]) for p in lines if p["line_key"] in keys), Decimal(0))


@contextlib.asynccontextmanager
async def ttb_stack(home: Path, *, database_url: str | None = None, retry: RetryPolicy = FAST_RETRY,
                    connections: Path | None = None, erp: str = "netsuite") -> AsyncIterator[TtbStack]:
    """The whole gateway, judging "future-dated" against the demo firm's today (2026-11-02). `erp`: DE01's books on
    the firm's shared NetSuite account, or on an account of its own of that ERP vendor (`ERP_ACCOUNTS`)."""
    if erp != "netsuite":
        assert connections is None, "name the ERP or a connections file, not both"
        connections = connections_file(home, accounts={"de01-erp": ERP_ACCOUNTS[erp]},
                                       routes={"DE01": {"erp": "de01-erp"}})
    connections = connections or connections_file(home)
    async with running_stack(home, database_url=database_url, retry=retry, connections=connections) as stack:
        stack.gateway.processes.service("time_to_bill").as_of = ANCHOR_DATE
        yield TtbStack(stack)


def misprice(s: TtbStack, project: str, *, every: int = 5, rate: Decimal | None = Decimal("1.00")) -> set[str]:
    """Make the time system price some approved billable October entries of a project at `rate` (a mismatch).

    Returns the Harvest ids of the changed entries; setting `rate=None` again is the fix (the
    time system then prices them from the project's rates).
    """
    store = s.sim("time").store
    index = store.project_index[project]
    changed = set()
    for entry in store.entries:
        if (entry.project == index and entry.billable and entry.state == 2 and entry.user % every == 0
                and entry.spent_date.month == 10):
            entry.rate = rate
            changed.add(str(entry.id))
    return changed


def mispriced(s: TtbStack) -> set[str]:
    """Harvest ids of the approved entries the time system prices differently from the rate card (seeded)."""
    return {str(e.id) for e in s.sim("time").store.entries if e.rate is not None and e.state == 2}
