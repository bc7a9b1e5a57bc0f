"""A gateway SIGKILLed mid-billing-run resumes on restart and posts every entry exactly once.

The five vendors run in their own process (their state must outlive the gateway), the
gateway in another, driven over HTTP like production. NetSuite answers each time-batch
POST only after a delay, so the run can be caught with one batch posted and the next in
flight; the gateway dies there. The in-flight batch may still land in NetSuite after the
gateway is gone — the restarted run re-sends it under the same batch key and the ERP
must not post it again.
"""

from __future__ import annotations

import collections
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ports import free_port
from tests.processes import running_simulators, start_gateway, stop, token, wait_until

pytestmark = pytest.mark.slow

BASE = "/process/time-to-bill/v1"
BATCH_PATH = "customrecord_psc_time_batch"
TERMINAL = {"succeeded", "needs_attention", "failed"}


@pytest.fixture
def all_simulators(tmp_path: Path) -> Any:
    with running_simulators(tmp_path) as urls:
        yield urls


def batch_posts(netsuite: str) -> int:
    seen = httpx.get(f"{netsuite}/__sim__/requests", params={"method": "POST", "path": BATCH_PATH}).json()
    return sum(int(s["count"]) for s in seen)


def time_bills(netsuite: str) -> int:
    return int(httpx.get(f"{netsuite}/__sim__/count", params={"type": "timeBill"}).json()["count"])


def posted_time(client: httpx.Client) -> list[dict[str, Any]]:
    """Every timeBill of October as the ERP system API lists it (paged)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"from": "2026-10-01", "to": "2026-10-31", "limit": 500,
                                        **({"cursor": cursor} if cursor else {})}
        page = client.get("/system/erp/v1/posted-time", params=params)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json().get("next_cursor")
        if not cursor:
            return items


def test_killed_gateway_resumes_the_billing_run_and_posts_each_entry_once(
        tmp_path: Path, all_simulators: dict[str, str]) -> None:
    netsuite = all_simulators["netsuite"]
    # Every time batch POST waits 3 s before NetSuite takes it: a window to kill the gateway in.
    httpx.post(f"{netsuite}/__sim__/faults", json={"kind": "slow", "delay": 3, "method": "POST",
                                                   "path": BATCH_PATH}).raise_for_status()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gateway = start_gateway(tmp_path, port, all_simulators, None)
    try:
        auth = {"Authorization": f"Bearer {token(base, tmp_path)}"}
        started = httpx.post(f"{base}{BASE}/billing-runs", json={"legal_entity_code": "US01", "period": "2026-10"},
                             headers={**auth, "Idempotency-Key": "ttb-crash-0001"}, timeout=30)
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        # One batch posted, the next one sent and held by NetSuite's delay: kill now.
        wait_until(lambda: time_bills(netsuite) > 0 and batch_posts(netsuite) >= 2, "a second batch in flight",
                   within=60)
        posted_before_kill = time_bills(netsuite)
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(10)
    finally:
        if gateway.poll() is None:
            gateway.kill()

    httpx.delete(f"{netsuite}/__sim__/faults").raise_for_status()
    gateway = start_gateway(tmp_path, port, all_simulators, None)
    try:
        auth = {"Authorization": f"Bearer {token(base, tmp_path)}"}
        with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
            run = wait_until(lambda: (r := client.get(f"{BASE}/billing-runs/{run_id}").json())["status"] in TERMINAL
                             and r, "the resumed run to finish", within=60)
            assert run["status"] in ("succeeded", "needs_attention"), run
            assert posted_before_kill < int(run["result"]["posted"])  # the restarted run did post the rest

            bills = posted_time(client)
            per_line = collections.Counter(b["line_key"] for b in bills)
            assert per_line and max(per_line.values()) == 1, [k for k, n in per_line.items() if n > 1][:5]
            assert time_bills(netsuite) == len(bills)  # the simulator holds no timeBill the API hides
            batches = int(httpx.get(f"{netsuite}/__sim__/count", params={"type": BATCH_PATH}).json()["count"])
            assert batch_posts(netsuite) > batches  # the batch in flight at the kill was sent again, posted once
            assert len(bills) == int(run["result"]["validated"])  # every valid entry posted, none lost

            reconciliation = client.get(f"{BASE}/reconciliation",
                                        params={"legal_entity_code": "US01", "period": "2026-10", "limit": 200})
            assert reconciliation.status_code == 200, reconciliation.text
            projects = reconciliation.json()["items"]
            assert len(projects) == 10
            for rec in projects:
                assert rec["discrepancies"] == [], rec
    finally:
        stop(gateway)
