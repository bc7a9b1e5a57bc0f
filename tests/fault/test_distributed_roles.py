"""The distributed layout: two gateways and two workers as separate processes on their own loopback addresses,
sharing PostgreSQL and Redis. A worker is killed mid-billing-run and a gateway under load; the run finishes once
on the surviving worker, clients see no 5xx beyond the connections the dead gateway cut, and the run's time
reconciles clean.

The vendors run in their own process, as in the crash tests; the ERP holds each time write for 2 s, so the run
can be caught with time posted and the next write in flight. The workers reach the system APIs through the
gateways over HTTP (`PSCONNECT_GATEWAY_URL` names both; a refused connection moves on to the other).
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.executors import LEASE_BEAT, LEASE_TTL
from tests.ports import free_port
from tests.processes import (
    PSCONNECT,
    SharedDb,
    posted_time,
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

BASE = "/process/time-to-bill/v1"
GATEWAYS = ("127.0.0.2", "127.0.0.3")
WORKERS = ("127.0.0.4", "127.0.0.5")
ISSUER = "http://127.0.0.1:8999"  # one issuer for every process, as behind a load balancer
WRITES = "customrecord_psc_time_batch"
"""The ERP's (NetSuite's) time writes."""


@pytest.fixture
async def database() -> Any:
    async with postgres_database() as url:
        yield url


@pytest.fixture
def simulators(tmp_path: Path) -> Iterator[dict[str, str]]:
    with running_simulators(tmp_path) as urls:
        yield urls


def _serve(home: Path, host: str, port: int, env: dict[str, str], role: str) -> subprocess.Popen[bytes]:
    home.mkdir(parents=True, exist_ok=True)
    proc = spawn([*PSCONNECT, "serve", "--role", role, "--host", host, "--port", str(port)], env,
                 home / f"{role}-{host}.log")

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{role} on {host} exited: {(home / f'{role}-{host}.log').read_text()[-3000:]}")
        return httpx.get(f"http://{host}:{port}/health/ready").status_code == 200

    wait_until(ready, f"{role} on {host}:{port}")
    return proc


@dataclass
class Load:
    """Clients reading through both gateways, round robin, until stopped: what they saw."""

    bases: tuple[str, ...]
    auth: dict[str, str]
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    cut: int = 0
    """Requests in flight when their gateway died (the connection dropped mid-request)."""
    refused: int = 0
    """Requests sent to the killed gateway's address afterwards (a load balancer would stop sending them)."""
    failed_at: set[str] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(headers=self.auth, timeout=10) as client:
            turn = 0
            while not self.stop.is_set():
                base = self.bases[turn % len(self.bases)]
                turn += 1
                try:
                    answer = client.get(f"{base}/system/erp/v1/legal-entities")
                except httpx.ConnectError:
                    self.refused += 1
                    self.failed_at.add(base)
                except httpx.TransportError:
                    self.cut += 1
                    self.failed_at.add(base)
                else:
                    self.statuses[answer.status_code] += 1
                time.sleep(0.02)


def test_a_killed_worker_and_a_killed_gateway_lose_nothing_and_post_nothing_twice(
        tmp_path: Path, database: str, simulators: dict[str, str]) -> None:
    netsuite = simulators["netsuite"]
    port = free_port()
    gateway_urls = [f"http://{host}:{port}" for host in GATEWAYS]
    env = {"DATABASE_URL": database, "REDIS_URL": "redis://127.0.0.1:6379/0", "PSCONNECT_LIMITS_STORE": "redis",
           "PSCONNECT_REDIS_PREFIX": f"psconnect-test-{uuid.uuid4().hex[:12]}", "PSCONNECT_PUBLIC_URL": ISSUER,
           "PSCONNECT_SEED_DEMO": "0", "PSCONNECT_SCHEDULES_ENABLED": "0",
           "PSCONNECT_VENDOR_URLS": json.dumps(simulators),
           "PSCONNECT_GATEWAY_URL": ",".join(gateway_urls)}
    client = register_client(database, tmp_path / "admin", ISSUER)
    httpx.post(f"{netsuite}/__sim__/faults", json={"kind": "slow", "delay": 2, "method": "POST",
                                                   "path": WRITES}).raise_for_status()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    db = SharedDb(database)
    load: Load | None = None
    try:
        for host in GATEWAYS:
            procs[host] = _serve(tmp_path / host, host, port, {**env, "PSCONNECT_HOME": str(tmp_path / host)},
                                 "gateway")
        for host in WORKERS:
            procs[host] = _serve(tmp_path / host, host, port, {**env, "PSCONNECT_HOME": str(tmp_path / host)},
                                 "worker")
        # A worker serves its probes and metrics, no public route.
        assert httpx.get(f"http://{WORKERS[0]}:{port}/system/erp/v1/legal-entities").status_code == 404

        token = httpx.post(f"{gateway_urls[0]}/oauth2/token", data={"grant_type": "client_credentials"}, auth=client)
        assert token.status_code == 200, token.text
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        load = Load(tuple(gateway_urls), auth)
        reader = threading.Thread(target=load.run, daemon=True)
        reader.start()

        started = httpx.post(f"{gateway_urls[0]}{BASE}/billing-runs",
                             json={"legal_entity_code": "US01", "period": "2026-10"},
                             headers={**auth, "Idempotency-Key": "distributed-0001"}, timeout=30)
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        wait_until(lambda: sim_count(netsuite, "timeBill") > 0 and sim_requests(netsuite, "POST", WRITES) >= 2,
                   "a second time write in flight", within=120)

        # The run is on a worker, never on a gateway: kill that worker, and one gateway under load.
        workflow = f"{run_id}:a1"
        executor = db.workflow(workflow)[1]
        victim = next(host for host in WORKERS if db.executor_of_pid(procs[host].pid) == executor)
        posted_before_kill = sim_count(netsuite, "timeBill")
        procs[victim].send_signal(signal.SIGKILL)
        procs[GATEWAYS[1]].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        for host in (victim, GATEWAYS[1]):
            procs[host].wait(10)
        httpx.delete(f"{netsuite}/__sim__/faults").raise_for_status()

        with httpx.Client(base_url=gateway_urls[0], headers=auth, timeout=30) as api:
            run = wait_until(lambda: (r := api.get(f"{BASE}/billing-runs/{run_id}").json())["status"] in (
                "succeeded", "needs_attention", "failed") and r, "the survivor to finish the run",
                within=LEASE_TTL + 4 * LEASE_BEAT + 120)
            took = time.monotonic() - killed_at
            load.stop.set()
            reader.join(15)
            assert run["status"] in ("succeeded", "needs_attention"), run
            assert run["attempt"] == 1  # finished by recovery, not by a second attempt
            survivor = next(host for host in WORKERS if host != victim)
            wait_until(lambda: db.workflow(workflow)[0] == "SUCCESS", "DBOS to record the workflow's end")
            assert db.workflow(workflow)[1] == db.executor_of_pid(procs[survivor].pid)
            assert sim_count(netsuite, "timeBill") > posted_before_kill  # the survivor posted the rest

            lines = posted_time(api, "US01")
            per_line = collections.Counter(b["line_key"] for b in lines)
            assert per_line and max(per_line.values()) == 1, [k for k, n in per_line.items() if n > 1][:5]
            assert len(lines) == int(run["result"]["validated"])  # every valid entry posted once, none lost
            reconciliation = api.get(f"{BASE}/reconciliation",
                                     params={"legal_entity_code": "US01", "period": "2026-10", "limit": 200})
            assert reconciliation.status_code == 200, reconciliation.text
            assert reconciliation.json()["items"]
            for rec in reconciliation.json()["items"]:
                assert rec["discrepancies"] == [], rec

        served = sum(load.statuses.values())
        assert not [s for s in load.statuses if s >= 500], load.statuses
        assert load.statuses[200] > 0 and load.failed_at <= {gateway_urls[1]}, (load.statuses, load.failed_at)
        assert load.cut <= 2  # at most the reads in flight when it died (one reader, one request at a time)
        print(f"\ndistributed kill test: run {run['status']} {took:.1f} s after the kills; {served} reads "
              f"answered ({dict(load.statuses)}), {load.cut} cut in flight and {load.refused} refused at the "
              f"killed gateway; {run['result']['validated']} lines posted once")
    finally:
        if load is not None:
            load.stop.set()
        for proc in procs.values():
            if proc.poll() is None:
                stop(proc)
        db.engine.dispose()

