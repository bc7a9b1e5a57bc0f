"""A gateway process killed mid-workflow resumes on restart without repeating a vendor write.

The vendors run in their own process (their state must outlive the gateway), the
gateway in another, driven over HTTP like production. The run is held inside its
PSA step by a slow vendor read, the gateway is SIGKILLed, and a new gateway on the
same state finishes the run: the ERP project was written exactly once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ports import free_port
from tests.processes import running_simulators, sim_count, sim_requests, start_gateway, stop, token, wait_until
from tests.stack import postgres_database

pytestmark = pytest.mark.slow

@pytest.fixture
def simulators(tmp_path: Path) -> Iterator[dict[str, str]]:
    with running_simulators(tmp_path) as urls:
        yield urls


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
        project = f"PRJ-{subject}"
        assert sim_count(netsuite, "job", external_id=project) == 1
        assert sim_count(kantata, "workspace", external_id=project) == 1
        assert sim_requests(netsuite, "PUT", "job") == 1  # the finished ERP write was not repeated
    finally:
        stop(gateway)
