"""A gateway SIGKILLed mid-billing-run resumes and posts every entry and expense exactly once — on each ERP.

The vendors run in their own process (their state must outlive the gateway), the gateway in another, driven over
HTTP like production. The ERP answers each time write only after a delay, so the run can be caught with time posted
and the next write in flight; the gateway dies there. The in-flight write may still land in the ERP after the
gateway is gone — the restarted run re-sends it under the same keys and the ERP must not post it again. Once per ERP
vendor (`CRASHED_ERPS`): US01 on the firm's NetSuite account (killed once with a time write in flight and once with
expense reports being written), then DE01 on an account of its own on Business Central and on Xero (whose rotated
refresh token and summarised-line compositions must survive the restart in the gateway's database). The simulators
process serves every account of the connections file (`psconnect simulators --connections`).
"""

from __future__ import annotations

import collections
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.events import INVOICE_POSTED, PAYMENT_RECEIVED
from foundation.db import create_engine
from process_apis.event_feed import EventFeed
from system_apis.xero._defaults import tenant_id
from tests.integration.process_apis.time_to_bill.ttb_stack import connections_file
from tests.ports import free_port
from tests.processes import (
    posted_time,
    running_simulators,
    sim_count,
    sim_requests,
    start_gateway,
    stop,
    token,
    wait_until,
)
from tests.stack import ERP_ACCOUNTS

pytestmark = pytest.mark.slow

BASE = "/process/time-to-bill/v1"
TERMINAL = {"succeeded", "needs_attention", "failed"}
SHARED = ("salesforce", "netsuite", "kantata", "workday", "harvest")
"""The firm's own accounts (the connections file's default entry), reached over HTTP."""


def _secrets(**values: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Credentials as the connections file names them (environment variables), and that environment."""
    return ({k: {"env": f"MOVED_ERP_{k.upper()}"} for k in values},
            {f"MOVED_ERP_{k.upper()}": v for k, v in values.items()})


@dataclass(frozen=True)
class CrashedErp:
    entity: str
    account: str
    """The connection serving the entity's ERP."""
    write_path: str
    """A regular expression finding the paths of the ERP's time writes (held back to catch the run mid-write)."""
    record_type: str
    """The simulator's record type of posted time."""
    entry: dict[str, Any] | None = None
    """The connection entry DE01 moves to (None: the shipped accounts)."""
    env: dict[str, str] | None = None
    read_path: str | None = None
    """A regular expression finding the ERP's invoice reads: when given, a receivables poll is killed too."""
    write_method: str = "POST"


_BC_CREDENTIALS, _BC_ENV = _secrets(client_id="sim-client", client_secret="sim-secret")
_XERO_CREDENTIALS, _XERO_ENV = _secrets(client_id="psconnect", client_secret="sim-secret",
                                        refresh_token="sim-token", code="DE01")
CRASHED_ERPS = [
    pytest.param(CrashedErp("US01", "netsuite", "customrecord_psc_time_batch", "timeBill",
                            read_path=r"/record/v1/invoice$"), id="netsuite"),
    pytest.param(CrashedErp("US01", "netsuite", r"/record/v1/expenseReport/", "expenseReport", write_method="PUT"),
                 id="netsuite-expenses"),
    pytest.param(CrashedErp("DE01", "moved-erp", r"/\$batch$", "timeRegistrationEntries",
                            {**ERP_ACCOUNTS["businesscentral"], "credentials": _BC_CREDENTIALS}, _BC_ENV),
                 id="businesscentral"),
    pytest.param(CrashedErp("DE01", "moved-erp", "/Time$", "time",
                            {**ERP_ACCOUNTS["xero"], "tenant": tenant_id("DE01"), "credentials": _XERO_CREDENTIALS,
                             # no grace for a retired refresh token: the restarted gateway must use the one it saved
                             "simulator": {**ERP_ACCOUNTS["xero"]["simulator"], "grace_seconds": 0}},
                            _XERO_ENV), id="xero"),
]


@pytest.mark.parametrize("erp", CRASHED_ERPS)
def test_killed_gateway_resumes_the_billing_run_and_posts_each_entry_once(tmp_path: Path, erp: CrashedErp) -> None:
    routes = {erp.entity: {"erp": erp.account}} if erp.entry else {}
    connections = connections_file(tmp_path, accounts={erp.account: erp.entry} if erp.entry else {}, routes=routes)
    env = {"PSCONNECT_CONNECTIONS": str(connections), **(erp.env or {})}
    with running_simulators(tmp_path, connections, erp.env) as all_urls:
        urls = {name: url for name, url in all_urls.items() if name in (*SHARED, erp.account)}
        _crash_and_resume(tmp_path, erp, urls, env)


def _crash_and_resume(tmp_path: Path, erp: CrashedErp, urls: dict[str, str], env: dict[str, str]) -> None:
    vendor = urls[erp.account]
    # Every time write waits 3 s before the ERP takes it: a window to kill the gateway in.
    httpx.post(f"{vendor}/__sim__/faults", json={"kind": "slow", "delay": 3, "method": erp.write_method,
                                                 "path": erp.write_path}).raise_for_status()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gateway = start_gateway(tmp_path, port, urls, None, env)
    try:
        auth = {"Authorization": f"Bearer {token(base, tmp_path)}"}
        started = httpx.post(f"{base}{BASE}/billing-runs", json={"legal_entity_code": erp.entity,
                                                                 "period": "2026-10"},
                             headers={**auth, "Idempotency-Key": "ttb-crash-0001"}, timeout=30)
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        # Time posted, and the next write sent and held by the ERP's delay: kill now.
        wait_until(lambda: sim_count(vendor, erp.record_type) > 0 and
                   sim_requests(vendor, erp.write_method, erp.write_path) >= 2, "a second write in flight", within=90)
        posted_before_kill = sim_count(vendor, erp.record_type)
        writes_before_kill = sim_requests(vendor, erp.write_method, erp.write_path)
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(10)
    finally:
        if gateway.poll() is None:
            gateway.kill()

    httpx.delete(f"{vendor}/__sim__/faults").raise_for_status()
    gateway = start_gateway(tmp_path, port, urls, None, env)
    try:
        auth = {"Authorization": f"Bearer {token(base, tmp_path)}"}
        with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
            run = wait_until(lambda: (r := client.get(f"{BASE}/billing-runs/{run_id}").json())["status"] in TERMINAL
                             and r, "the resumed run to finish", within=90)
            assert run["status"] in ("succeeded", "needs_attention"), run
            assert sim_count(vendor, erp.record_type) > posted_before_kill  # the restarted run posted the rest
            assert sim_requests(vendor, erp.write_method, erp.write_path) > writes_before_kill

            lines = posted_time(client, erp.entity)
            per_line = collections.Counter(b["line_key"] for b in lines)
            assert per_line and max(per_line.values()) == 1, [k for k, n in per_line.items() if n > 1][:5]
            assert len(lines) == int(run["result"]["validated"])  # every valid entry posted, none lost
            costs = collections.Counter(x["line_key"] for x in posted_time(client, erp.entity, "posted-expenses"))
            assert costs and max(costs.values()) == 1, [k for k, n in costs.items() if n > 1][:5]
            assert len(costs) == int(run["result"]["expenses_posted"]) > 0  # and every posted expense once

            reconciliation = client.get(f"{BASE}/reconciliation",
                                        params={"legal_entity_code": erp.entity, "period": "2026-10", "limit": 200})
            assert reconciliation.status_code == 200, reconciliation.text
            projects = reconciliation.json()["items"]
            assert projects
            for rec in projects:
                assert rec["discrepancies"] == [], rec
    finally:
        stop(gateway)
    if erp.read_path is not None:
        _read_back_survives_a_kill(tmp_path, erp, urls, env, port)


def _read_back_survives_a_kill(tmp_path: Path, erp: CrashedErp, urls: dict[str, str], env: dict[str, str],
                               port: int) -> None:
    """The invoices posted and one paid in the ERP; a receivables poll killed while its read is in flight resumes
    on restart and records every invoice with one invoice.posted each and the payment once."""
    assert erp.read_path is not None
    vendor, base = urls[erp.account], f"http://127.0.0.1:{port}"
    gateway = start_gateway(tmp_path, port, urls, None, env)
    try:
        auth = {"Authorization": f"Bearer {token(base, tmp_path)}"}
        with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
            invoices = client.get("/system/erp/v1/invoices", params={
                "legal_entity": erp.entity, "period": "2026-10", "limit": 200}).json()["items"]
            mine = [i for i in invoices if i["legal_entity_id"] == invoices[0]["legal_entity_id"]]
            for invoice in mine:
                posted = client.post(f"/system/erp/v1/invoices/by-external-id/{invoice['external_id']}/post",
                                     params={"legal_entity": erp.entity})
                assert posted.status_code == 200, posted.text
            paid = client.put("/system/erp/v1/payments/by-external-id/PAY-CRASH-1", params={
                "legal_entity": erp.entity}, json={
                "invoice_external_id": mine[0]["external_id"], "legal_entity_id": mine[0]["legal_entity_id"],
                "date": "2026-11-20", "amount": {"amount": "100.00", "currency": mine[0]["currency"]}})
            assert paid.status_code == 201, paid.text
            httpx.post(f"{vendor}/__sim__/faults", json={"kind": "slow", "delay": 3, "method": "GET",
                                                         "path": erp.read_path}).raise_for_status()
            reads = sim_requests(vendor, "GET", erp.read_path)
            started = client.post("/process/receivables/v1/runs", json={}, headers={"Idempotency-Key": "rcv-crash-1"})
            assert started.status_code == 202, started.text
            poll_id = started.json()["id"]
            wait_until(lambda: sim_requests(vendor, "GET", erp.read_path) > reads, "an invoice read in flight")
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(10)
    finally:
        if gateway.poll() is None:
            gateway.kill()

    httpx.delete(f"{vendor}/__sim__/faults").raise_for_status()
    gateway = start_gateway(tmp_path, port, urls, None, env)
    try:
        auth = {"Authorization": f"Bearer {token(base, tmp_path)}"}
        with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
            poll = wait_until(lambda: (r := client.get(f"/process/receivables/v1/runs/{poll_id}").json())["status"]
                              in TERMINAL and r, "the resumed poll to finish", within=90)
            assert poll["status"] == "succeeded", poll
            read = {i["external_id"]: i for i in client.get("/process/receivables/v1/invoices", params={
                "legal_entity": erp.entity, "limit": 200}).json()["items"]}
            assert {i["external_id"] for i in mine} <= set(read)
            assert read[mine[0]["external_id"]]["status"] == "partially_paid"
            again = client.post("/process/receivables/v1/runs", json={}, headers={"Idempotency-Key": "rcv-crash-2"})
            second = wait_until(lambda: (r := client.get(f"/process/receivables/v1/runs/{again.json()['id']}")
                                         .json())["status"] in TERMINAL and r, "a second poll", within=60)
            assert second["result"]["changed"] == "0", second  # nothing new to record, nothing published again
    finally:
        stop(gateway)
    feed = EventFeed(create_engine(f"sqlite:///{tmp_path / 'psconnect.sqlite'}")).after(0, 100_000)
    posted_events = collections.Counter(f.event.data["invoice_external_id"] for f in feed
                                        if f.event.type == INVOICE_POSTED)
    assert set(posted_events) == {i["external_id"] for i in mine} and set(posted_events.values()) == {1}
    assert [f.event.data["amount_received"]["amount"] for f in feed if f.event.type == PAYMENT_RECEIVED] == ["100.00"]
