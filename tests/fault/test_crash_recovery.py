"""A gateway process killed mid-workflow resumes on restart without repeating a vendor write.

The vendors run in their own process (their state must outlive the gateway), the
gateway in another, driven over HTTP like production. The run is held inside its
PSA step by a slow vendor read, the gateway is SIGKILLed, and a new gateway on the
same state finishes the run: the ERP project was written exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.vendors import VENDORS
from tests.ports import free_port
from tests.stack import postgres_database

pytestmark = pytest.mark.slow

PSCONNECT = [sys.executable, "-m", "gateway"]


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
    return subprocess.Popen(args, env={**os.environ, **env}, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            cwd=Path(__file__).resolve().parents[2])


@pytest.fixture
def simulators(tmp_path: Path) -> Iterator[dict[str, str]]:
    base = free_port(len(VENDORS) + 1) - 1
    proc = spawn([*PSCONNECT, "simulators", "--port-base", str(base)], {}, tmp_path / "simulators.log")
    urls = {"salesforce": f"http://127.0.0.1:{base + 1}", "netsuite": f"http://127.0.0.1:{base + 2}",
            "kantata": f"http://127.0.0.1:{base + 3}"}
    try:
        for url in urls.values():
            wait_until(lambda u=url: httpx.get(f"{u}/__sim__/faults").status_code == 200, f"simulator {url}")
        yield urls
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def start_gateway(home: Path, port: int, urls: dict[str, str], database_url: str | None) -> subprocess.Popen[bytes]:
    env = {"PSCONNECT_HOME": str(home), "PSCONNECT_VENDOR_URLS": json.dumps(urls), "PSCONNECT_PORT": str(port)}
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


def run_state(base: str, auth: dict[str, str], run_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{base}/process/provisioning/v1/runs/{run_id}", headers=auth).json()
    return answer


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_killed_gateway_resumes_the_run_without_repeating_vendor_writes(
        tmp_path: Path, simulators: dict[str, str], database: str) -> None:
    if database == "postgres":
        async with postgres_database() as url:
            _crash_and_resume(tmp_path, simulators, url)
    else:
        _crash_and_resume(tmp_path, simulators, None)


def _crash_and_resume(home: Path, urls: dict[str, str], database_url: str | None) -> None:
    kantata, netsuite = urls["kantata"], urls["netsuite"]
    # Hold the run inside its PSA step: Kantata answers the workspace lookup only after 60 s.
    httpx.post(f"{kantata}/__sim__/faults", json={"kind": "slow", "delay": 60, "method": "GET",
                                                 "path": "external_references"}).raise_for_status()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gateway = start_gateway(home, port, urls, database_url)
    try:
        auth = {"Authorization": f"Bearer {token(base, home)}"}
        started = httpx.post(f"{base}/process/provisioning/v1/runs", json={"opportunity_id": "OPP-0001"},
                             headers={**auth, "Idempotency-Key": "crash-test-0001"})
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]

        def in_psa_step() -> bool:
            steps = {s["name"]: s for s in run_state(base, auth, run_id)["steps"]}
            return steps["erp_project"]["state"] == "succeeded" and steps["psa_project"]["state"] == "running"

        wait_until(in_psa_step, "the run to reach its PSA step")
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(10)
    finally:
        if gateway.poll() is None:
            gateway.kill()

    httpx.delete(f"{kantata}/__sim__/faults").raise_for_status()
    gateway = start_gateway(home, port, urls, database_url)
    try:
        auth = {"Authorization": f"Bearer {token(base, home)}"}
        run = wait_until(lambda: (r := run_state(base, auth, run_id))["status"] in ("succeeded", "failed") and r,
                         "the resumed run to finish")
        assert run["status"] == "succeeded", run
        subject = run["subject"]
        steps = {s["name"]: s for s in run["steps"]}
        assert steps["erp_project"]["attempts"] == 1 and steps["erp_customer"]["attempts"] == 1

        def census(sim: str, record_type: str) -> int:
            answer = httpx.get(f"{sim}/__sim__/count", params={"type": record_type, "external_id": f"PRJ-{subject}"})
            return int(answer.json()["count"])

        assert census(netsuite, "job") == 1 and census(kantata, "workspace") == 1
        writes = httpx.get(f"{netsuite}/__sim__/requests", params={"method": "PUT", "path": "job"}).json()
        assert sum(w["count"] for w in writes) == 1, writes  # the finished ERP write was not repeated
    finally:
        stop(gateway)
