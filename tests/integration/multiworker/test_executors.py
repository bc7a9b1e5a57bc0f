"""Several gateway processes on one PostgreSQL database: each is its own DBOS executor, and the
workflows of a killed one finish exactly once on a survivor, never on a live sibling's start-up.

Real processes, as in production: the vendors run in their own process (their state outlives
any gateway), the gateways are `psconnect serve` processes, and vendor writes are counted at
the simulators, like the SIGKILL crash tests do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.executors import LEASE_BEAT, LEASE_TTL
from tests.ports import free_port
from tests.processes import (
    PSCONNECT,
    SharedDb,
    register_client,
    running_simulators,
    sim_count,
    sim_requests,
    spawn,
    stop,
    wait_until,
)
from tests.stack import postgres_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ISSUER = "http://127.0.0.1:8999"  # one issuer for every process, as behind a load balancer


@pytest.fixture
def simulators(tmp_path: Path) -> Iterator[dict[str, str]]:
    with running_simulators(tmp_path) as urls:
        yield urls


@pytest.fixture
async def database() -> Any:
    async with postgres_database() as url:
        yield url


def _env(home: Path, database_url: str, urls: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    env = {"PSCONNECT_HOME": str(home), "DATABASE_URL": database_url, "PSCONNECT_SEED_DEMO": "0",
           "PSCONNECT_PUBLIC_URL": ISSUER, **extra}
    if urls:
        env["PSCONNECT_VENDOR_URLS"] = json.dumps(urls)
    return env


def _serve(home: Path, port: int, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    home.mkdir(parents=True, exist_ok=True)
    proc = spawn([*PSCONNECT, "serve", "--port", str(port), *args], env, home / "gateway.log")
    wait_until(lambda: proc.poll() is None and httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200,
               f"gateway on {port}")
    return proc


def _token(port: int, client: tuple[str, str]) -> dict[str, str]:
    answer = httpx.post(f"http://127.0.0.1:{port}/oauth2/token", data={"grant_type": "client_credentials"},
                        auth=client)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _children(parent: int) -> set[int]:
    kids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                kids.add(int(entry.name))
    return kids


def test_each_worker_is_its_own_executor_and_a_killed_workers_lease_is_recovered(
        tmp_path: Path, database: str) -> None:
    db = SharedDb(database)
    port = free_port()
    env = _env(tmp_path / "home", database, REDIS_URL="redis://127.0.0.1:6379/0",
               PSCONNECT_LIMITS_STORE="redis", PSCONNECT_REDIS_PREFIX=f"psconnect-test-{uuid.uuid4().hex[:12]}")
    parent = _serve(tmp_path / "home", port, env, "--workers", "2")
    try:
        leases = wait_until(lambda: len(found := db.leases()) == 2 and found, "two worker leases")
        assert len(set(leases)) == 2  # two executor ids, not "local" twice
        assert "local" not in leases
        assert set(leases.values()) <= _children(parent.pid)  # one lease per worker process
        for executor_id, pid in leases.items():
            assert f"-{pid}-" in executor_id

        victim, survivor = sorted(leases.items())
        os.kill(victim[1], signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: victim[0] not in db.leases(), "the killed worker's lease to be claimed and recovered",
                   within=LEASE_TTL + 4 * LEASE_BEAT + 30)
        took = time.monotonic() - killed_at
        assert took >= LEASE_TTL - LEASE_BEAT  # never taken for dead while its lease was fresh
        assert survivor[0] in db.leases()  # the live worker keeps its lease throughout
    finally:
        stop(parent)
        db.engine.dispose()


def test_a_killed_processes_workflow_finishes_once_on_a_survivor_never_on_a_live_start_up(
        tmp_path: Path, database: str, simulators: dict[str, str]) -> None:
    db = SharedDb(database)
    kantata, netsuite = simulators["kantata"], simulators["netsuite"]
    client = register_client(database, tmp_path / "admin", ISSUER)
    # Hold the run inside its PSA step: Kantata answers the workspace lookup only after 60 s.
    httpx.post(f"{kantata}/__sim__/faults", json={"kind": "slow", "delay": 60, "method": "GET",
                                                 "path": "external_references"}).raise_for_status()
    port_a, port_b = free_port(), free_port()
    a = _serve(tmp_path / "a", port_a, _env(tmp_path / "a", database, simulators))
    b: subprocess.Popen[bytes] | None = None
    try:
        base_a = f"http://127.0.0.1:{port_a}"
        auth = _token(port_a, client)
        started = httpx.post(f"{base_a}/process/provisioning/v1/runs", json={"opportunity_id": "OPP-0001"},
                             headers={**auth, "Idempotency-Key": "multiworker-0001"})
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]

        def steps(base: str) -> dict[str, Any]:
            run = httpx.get(f"{base}/process/provisioning/v1/runs/{run_id}", headers=auth).json()
            return {s["name"]: s for s in run["steps"]}

        wait_until(lambda: (s := steps(base_a))["erp_project"]["state"] == "succeeded"
                   and s["psa_project"]["state"] == "running", "the run to reach its PSA step")
        workflow = f"{run_id}:a1"
        executor_a = db.executor_of_pid(a.pid)
        held = db.workflow(workflow)
        assert executor_a is not None and held[:2] == ("PENDING", executor_a)

        # A second process starts beside the live one: its start-up must leave A's workflow alone
        # (with one executor id for both, B's DBOS.launch() re-enqueued it and ran its PSA step again).
        b = _serve(tmp_path / "b", port_b, _env(tmp_path / "b", database, simulators))
        executor_b = wait_until(lambda: db.executor_of_pid(b.pid), "B's lease")
        time.sleep(2 * LEASE_BEAT)  # B's start-up recovery and a couple of lease rounds have run
        assert db.workflow(workflow) == held  # still A's, never recovered

        a.send_signal(signal.SIGKILL)
        a.wait(10)
        httpx.delete(f"{kantata}/__sim__/faults").raise_for_status()

        base_b = f"http://127.0.0.1:{port_b}"
        run = wait_until(lambda: (r := httpx.get(f"{base_b}/process/provisioning/v1/runs/{run_id}",
                                                 headers=auth).json())["status"] in ("succeeded", "failed") and r,
                         "the survivor to finish the run", within=LEASE_TTL + 4 * LEASE_BEAT + 60)
        assert run["status"] == "succeeded", run
        # The run resource is finished by the workflow's last step; DBOS records the workflow's own end just after.
        wait_until(lambda: db.workflow(workflow)[0] == "SUCCESS", "DBOS to record the workflow's end", within=30)
        assert db.workflow(workflow)[:2] == ("SUCCESS", executor_b)
        assert executor_a not in db.leases()
        subject = run["subject"]
        finished = {s["name"]: s for s in run["steps"]}
        assert finished["erp_project"]["attempts"] == 1 and finished["erp_customer"]["attempts"] == 1
        assert sim_count(netsuite, "job", external_id=f"PRJ-{subject}") == 1
        assert sim_count(kantata, "workspace", external_id=f"PRJ-{subject}") == 1
        assert sim_requests(netsuite, "PUT", "job") == 1  # the finished ERP write was not repeated
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                stop(proc)
        db.engine.dispose()
