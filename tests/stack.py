"""Test helpers for running the whole embedded stack in-process, as a client sees it.

Not a conftest: imported explicitly by the tests that need a stack, so fixtures of
different suites cannot collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import sqlalchemy as sa
from asgi_lifespan import LifespanManager

from foundation.retry import RetryPolicy
from gateway.app import Gateway, create_gateway
from gateway.settings import load_settings
from system_apis.connections import DEFAULT_FILE as DEFAULT_CONNECTIONS

__all__ = ["ALL_SCOPES", "ERP_ACCOUNTS", "PG_ADMIN_URL", "Stack", "connections_file", "lifespan",
           "postgres_database", "running_stack"]

ALL_SCOPES = ("system.crm:read", "system.crm:write", "system.erp:read", "system.erp:write", "system.psa:read",
              "system.psa:write", "process.provisioning:read", "process.provisioning:write",
               "experience.workbench:read", "experience.workbench:write", "experience.dashboards:read",
               "system.time:read", "system.hr:read", "process.worker_sync:read", "process.worker_sync:write",
               "process.time_to_bill:read", "process.time_to_bill:write", "experience.audit:read",
               "process.receivables:read", "process.receivables:write",
               "experience.subscriptions:read", "experience.subscriptions:write", "ops.metrics:read")
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
FAST_RETRY = RetryPolicy(max_attempts=6, base_delay=0.01, max_delay=0.05, max_retry_after=0.2)
FAST_VENDOR_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=0.1)
TERMINAL = {"succeeded", "needs_attention", "failed"}
ERP_ACCOUNTS = {
    "netsuite": {"vendor": "netsuite"},
    "businesscentral": {"vendor": "businesscentral"},
    # a simulated Xero organisation seeded with the book of the entity it serves, unthrottled (tests must not
    # wait out 60 calls a minute)
    "xero": {"vendor": "xero", "pacing": False,
             "simulator": {"seed": True, "calls_per_minute": None, "calls_per_day": None}},
}
"""A connection entry per ERP vendor, for tests that move an entity's books to each ERP in turn."""


def connections_file(home: Path, *, accounts: dict[str, dict[str, Any]] | None = None,
                     routes: dict[str, dict[str, str]] | None = None,
                     unpaced: frozenset[str] = frozenset(), unlimited: dict[str, Any] | None = None) -> Path:
    """The shipped connections file plus `accounts` (more connections) and `routes` (entity or `default` ->
    {domain: connection}, replacing those domains of its entry); the accounts of `unpaced` vendors are not
    paced and their simulators take `unlimited` (tests must not wait out a vendor's real windows)."""
    doc: dict[str, Any] = msgspec.yaml.decode(DEFAULT_CONNECTIONS.read_bytes())
    doc["connections"].update(accounts or {})
    for connection in doc["connections"].values():
        if connection["vendor"] in unpaced:
            connection.update(pacing=False, simulator=unlimited or {})
    for entity, domains in (routes or {}).items():
        doc["entities"].setdefault(entity, {}).update(domains)
    path = home / "connections.yaml"
    path.write_bytes(msgspec.yaml.encode(doc))
    return path


@dataclass
class Stack:
    gateway: Gateway
    http: httpx.AsyncClient
    client_id: str
    client_secret: str

    def sim(self, domain: str, legal_entity: str | None = None) -> Any:
        return self.gateway.simulator(domain, legal_entity)

    async def start(self, opportunity_id: str, key: str | None = None) -> httpx.Response:
        return await self.http.post("/process/provisioning/v1/runs", json={"opportunity_id": opportunity_id},
                                    headers={"Idempotency-Key": key or str(uuid.uuid4())})

    async def wait(self, run_id: str, within: float = 30.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            run: dict[str, Any] = (await self.http.get(f"/process/provisioning/v1/runs/{run_id}")).json()
            if run["status"] in TERMINAL:
                return run
            if loop.time() > deadline:
                raise AssertionError(f"run {run_id} still {run['status']}: {run['steps']}")
            await asyncio.sleep(0.05)

    async def wait_for(self, run_path: str, within: float = 60.0) -> dict[str, Any]:
        """Any process run (by its URL) once it is terminal."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            run: dict[str, Any] = (await self.http.get(run_path)).json()
            if run["status"] in TERMINAL:
                return run
            if loop.time() > deadline:
                raise AssertionError(f"run {run_path} still {run['status']}")
            await asyncio.sleep(0.05)

    async def provision(self, opportunity_id: str) -> dict[str, Any]:
        response = await self.start(opportunity_id)
        assert response.status_code in (200, 202), response.text
        return await self.wait(response.json()["id"])


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A throw-away PostgreSQL database on the local server, dropped afterwards."""
    name = f"psconnect_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        await asyncio.to_thread(_steps_in_flight_finish)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _steps_in_flight_finish(within: float = 30.0) -> None:
    """Wait for DBOS's executor threads, shut down with the gateway, to finish the step each may still run.

    DBOS's shutdown does not wait for a step in flight (a schedule's fire that began as the gateway stopped).
    Dropped under it, the database would leave that step retrying its connection forever, and the test
    process hanging at exit, which joins those threads."""
    deadline = time.monotonic() + within
    for thread in threading.enumerate():
        if thread.name.startswith("dbos-executor") and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """The gateway started and, after the block, shut down. Shutdown joins DBOS's threads (up to 10 s each) and
    may take a while on a loaded CI host; should it hang, every thread's and task's stack is printed before the
    timeout fails the test, so the failure says where it hung."""
    manager = LifespanManager(app, startup_timeout=60, shutdown_timeout=90)
    try:
        async with manager:
            yield
    except TimeoutError:
        faulthandler.dump_traceback(all_threads=True)
        for task in asyncio.all_tasks():
            task.print_stack(file=sys.stderr)
        raise


@contextlib.asynccontextmanager
async def running_stack(home: Path, *, database_url: str | None = None, retry: RetryPolicy = FAST_RETRY,
                        connections: Path | None = None, **settings: object) -> AsyncIterator[Stack]:
    """The embedded stack; `connections` names another connections file than the shipped one; `settings`:
    further Settings overrides (a schedule file, schedules on)."""
    overrides: dict[str, object] = {"home": str(home), "seed_demo": False, **settings}
    if database_url:
        overrides["database_url"] = database_url
    if connections is not None:
        overrides["connections_file"] = str(connections)
    gateway = create_gateway(load_settings(env={}, **overrides), retry=retry, vendor_retry=FAST_VENDOR_RETRY)
    async with lifespan(gateway.app):
        client_id, secret = gateway.oauth.clients.create("integration tests", ALL_SCOPES)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app),  # type: ignore[arg-type]
                                     base_url="http://testserver", timeout=60) as http:
            token = await http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                    auth=(client_id, secret))
            assert token.status_code == 200, token.text
            http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            yield Stack(gateway, http, client_id, secret)
