"""Running psconnect as real processes in tests: the gateway, the vendor simulators, and waiting on them.

Tests about processes (crash recovery, several workers) start `python -m gateway` the way an
operator would and talk to it over HTTP; these are the few helpers they share.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import sqlalchemy as sa

from cli.demo_client import DEMO_SCOPES
from foundation.db import create_engine
from gateway.executors import workflow_executors
from gateway.oauth import OAuth
from gateway.settings import load_settings
from system_apis.registry import installed
from tests.ports import free_port

__all__ = ["NO_SCHEDULES", "PSCONNECT", "SharedDb", "posted_time", "register_client", "running_simulators", "sim_count",
           "sim_requests", "spawn", "start_gateway", "stop", "token", "wait_until"]

PSCONNECT = [sys.executable, "-m", "cli"]
NO_SCHEDULES = {"PSCONNECT_SCHEDULES_ENABLED": "0"}
"""A `psconnect serve` the suite spawns reads the process environment, where the shipped schedules fire (as
under `make run`): a 15-minute posting fire during a billing test posts that test's lines under a run of its own.
Spawned instances fire none unless a test asks (its `env` overrides this)."""


def wait_until(check: Any, what: str, within: float = 120.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env={**os.environ, **NO_SCHEDULES, **env}, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def start_gateway(home: Path, port: int, urls: dict[str, str], database_url: str | None,
                  env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {"PSCONNECT_HOME": str(home), "PSCONNECT_VENDOR_URLS": json.dumps(urls), "PSCONNECT_PORT": str(port),
           **(env or {})}
    if database_url:
        env["DATABASE_URL"] = database_url
    proc = spawn([*PSCONNECT, "serve"], env, home / "gateway.log")
    wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200, "gateway start")
    return proc


def token(base: str, home: Path) -> str:
    creds = wait_until(lambda: (home / "demo-client.json").exists() and json.loads(
        (home / "demo-client.json").read_text()), "demo credentials")
    answer = httpx.post(f"{base}/oauth2/token", data={"grant_type": "client_credentials"},
                        auth=(creds["client_id"], creds["client_secret"]))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


@contextmanager
def running_simulators(tmp_path: Path, connections: Path | None = None,
                       env: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """Every vendor simulator in one process of its own (their state outlives any gateway): name -> URL. With
    a connections file: one simulator per account of it, seeded as embedded mode would, by connection name
    (`env`: the environment its credentials name)."""
    count = len(installed()) if connections is None else len(msgspec.yaml.decode(connections.read_bytes())[
        "connections"])
    base = free_port(count + 1) - 1
    log = tmp_path / "simulators.log"
    extra = ["--connections", str(connections)] if connections is not None else []
    proc = spawn([*PSCONNECT, "simulators", "--port-base", str(base), *extra], env or {}, log)

    def printed() -> dict[str, str] | None:
        if proc.poll() is not None:
            raise AssertionError(f"psconnect simulators exited: {log.read_text()[-2000:]}")
        return next((json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")), None)

    try:
        urls: dict[str, str] = wait_until(printed, "the simulators' URLs")
        for url in urls.values():
            wait_until(lambda u=url: httpx.get(f"{u}/__sim__/faults").status_code == 200, f"simulator {url}")
        yield urls
    finally:
        stop(proc)


def sim_requests(sim: str, method: str, path: str) -> int:
    """How many `method` requests a simulator received on paths matching `path` (a regular expression)."""
    seen = httpx.get(f"{sim}/__sim__/requests", params={"method": method, "path": path}).json()
    return sum(int(s["count"]) for s in seen)


def sim_count(sim: str, record_type: str, **filters: str) -> int:
    """How many records of `record_type` a simulator holds (optionally with this `external_id`)."""
    return int(httpx.get(f"{sim}/__sim__/count", params={"type": record_type, **filters}).json()["count"])


def posted_time(client: httpx.Client, entity: str, kind: str = "posted-time") -> list[dict[str, Any]]:
    """The entity's October time (or, `kind="posted-expenses"`, expense costs) as its ERP account lists them through
    the ERP system API (paged)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"from": "2026-10-01", "to": "2026-10-31", "limit": 500,
                                        "legal_entity": entity, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/system/erp/v1/{kind}", params=params)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json().get("next_cursor")
        if not cursor:
            return items


def register_client(database_url: str, home: Path, issuer: str) -> tuple[str, str]:
    """A client with the demo scopes, registered up front in the shared database, as an operator would."""
    engine = create_engine(database_url)
    try:
        oauth = OAuth(load_settings(env={"PSCONNECT_HOME": str(home), "DATABASE_URL": database_url,
                                         "PSCONNECT_PUBLIC_URL": issuer}), engine)
        oauth.create_tables()
        return oauth.clients.create("process test", DEMO_SCOPES)
    finally:
        engine.dispose()


class SharedDb:
    """The database several processes share, read the way an operator would."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def leases(self) -> dict[str, int]:
        """Executor id -> pid of every lease row."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(workflow_executors.c.executor_id, workflow_executors.c.pid)).all()
        return {r.executor_id: r.pid for r in rows}

    def workflow(self, workflow_id: str) -> tuple[str, str, int]:
        """(status, executor id, recovery attempts) of one DBOS workflow."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.text("SELECT status, executor_id, recovery_attempts FROM dbos.workflow_status "
                                       "WHERE workflow_uuid = :id"), {"id": workflow_id}).one()
        return str(row.status), str(row.executor_id), int(row.recovery_attempts)

    def executor_of_pid(self, pid: int) -> str | None:
        return next((e for e, p in self.leases().items() if p == pid), None)
