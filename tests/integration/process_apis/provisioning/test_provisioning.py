"""Project provisioning end to end: through the gateway, with tokens, against the simulators.

Every scenario ends by counting the projects the ERP and PSA contracts list: exactly one of each per
opportunity, whatever was thrown at the run. The suite runs once per vendor of each domain
(`VENDOR_SETS`): the firm's accounts on their own vendors, then moved in the connections file to the
other CRM, PSA and ERP vendors — the process and these assertions are the same for all. Xero keeps no
milestone schedule on a project, and every won demo deal but one carries milestones, so Xero runs
`TestErpWithoutMilestones` instead: the one time-and-materials deal through a fault storm, and a
milestone deal ending as an owned exception that writes no project.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from foundation.retry import RetryPolicy
from system_apis._internal.faults import Fault
from system_apis.demo_firm import HOME_ENTITIES
from tests.stack import ERP_ACCOUNTS, Stack, connections_file, postgres_database, running_stack

VENDOR_SETS = [
    pytest.param({}, id="salesforce-kantata-netsuite"),
    pytest.param({"crm": {"vendor": "hubspot"}, "psa": {"vendor": "certinia"}, "erp": {"vendor": "businesscentral"}},
                 id="hubspot-certinia-businesscentral"),
]
"""The firm's CRM, PSA and ERP accounts (connection entries by domain) each suite run moves the home entities to;
the first keeps the shipped ones."""


def firm_accounts(home: Path, accounts: dict[str, dict[str, Any]]) -> Path | None:
    """The connections file that serves the home entities from `accounts`: one CRM and one PSA account for
    the firm (the `default` entry), one ERP account per entity (a Business Central company or a Xero
    organisation keeps one entity's books); entities not named stay on the shipped ERP account."""
    if not accounts:
        return None
    shared = {d: a for d, a in accounts.items() if d != "erp"}
    connections = {f"firm-{d}": a for d, a in shared.items()}
    routes: dict[str, dict[str, str]] = {"default": {d: f"firm-{d}" for d in shared}}
    for entity in HOME_ENTITIES if "erp" in accounts else ():
        connections[f"firm-erp-{entity.lower()}"] = accounts["erp"]
        routes[entity] = {"erp": f"firm-erp-{entity.lower()}"}
    return connections_file(home, accounts=connections, routes=routes)


@pytest.fixture(params=VENDOR_SETS)
async def stack(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, connections=firm_accounts(tmp_path, request.param)) as s:
        yield s


async def projects(stack: Stack, domain: str, subject: str) -> int:
    """How many projects the domain's contract lists, over every page, under the opportunity's project id."""
    count, params = 0, {"external_id": f"PRJ-{subject}"}
    while True:
        listed = await stack.http.get(f"/system/{domain}/v1/projects", params=params)
        assert listed.status_code == 200, listed.text
        count += len(listed.json()["items"])
        if not listed.json().get("next_cursor"):
            return count
        params["cursor"] = listed.json()["next_cursor"]


async def assert_one_project_each(stack: Stack, subject: str) -> None:
    assert (await projects(stack, "erp", subject), await projects(stack, "psa", subject)) == (1, 1)


class TestHappyPath:
    async def test_won_opportunity_becomes_erp_and_psa_projects(self, stack: Stack) -> None:
        response = await stack.start("OPP-0001")
        assert response.status_code == 202
        assert response.headers["Location"].endswith(response.json()["id"])
        run = await stack.wait(response.json()["id"])

        assert run["status"] == "succeeded", run
        assert [s["state"] for s in run["steps"]] == ["succeeded"] * 6
        assert all(s["started_at"] and s["finished_at"] and s["duration_ms"] is not None for s in run["steps"])
        ids = {k: v for s in run["steps"] for k, v in s["vendor_ids"].items()}
        assert {"crm_opportunity", "erp_customer", "erp_project", "psa_project", "event"} <= set(ids)
        await assert_one_project_each(stack, run["subject"])

        erp = (await stack.http.get(f"/system/erp/v1/projects/{run['result']['erp_project_id']}")).json()
        psa = (await stack.http.get(f"/system/psa/v1/projects/{run['result']['psa_project_id']}")).json()
        assert erp["budget"] == {"amount": "655000.00", "currency": "USD"} and erp["external_id"] == \
            f"PRJ-{run['subject']}"
        assert psa["budget"]["amount"] == "655000.00" and psa["erp_project_id"] == erp["id"]

        events = (await stack.http.get("/process/provisioning/v1/events",
                                       params={"type": "psconnect.project.provisioned"})).json()["items"]
        assert [e["subject"] for e in events] == [run["subject"]]
        assert events[0]["specversion"] == "1.0" and events[0]["data"]["erp_project_id"] == erp["id"]

    async def test_fixed_fee_deal_carries_its_milestones_to_erp_and_psa(self, stack: Stack) -> None:
        run = await stack.provision("OPP-0002")  # template fixed_fee_milestones
        assert run["status"] == "succeeded", run
        erp = (await stack.http.get(f"/system/erp/v1/projects/{run['result']['erp_project_id']}")).json()
        psa = (await stack.http.get(f"/system/psa/v1/projects/{run['result']['psa_project_id']}")).json()
        assert erp["billing"]["billing_type"] == "fixed_fee" and len(erp["billing"]["milestones"]) == 3
        assert sorted(m["name"] for m in psa["milestones"]) == ["Final acceptance", "Kick-off", "Mid-point review"]
        assert sum(float(m["amount"]["amount"]) for m in erp["billing"]["milestones"]) == pytest.approx(
            float(erp["budget"]["amount"]))


class TestIdempotency:
    async def test_second_start_returns_the_same_run(self, stack: Stack) -> None:
        first = await stack.start("OPP-0001")
        run = await stack.wait(first.json()["id"])
        second = await stack.start(run["subject"])  # the CRM id names the same run as the external id
        assert second.status_code == 200 and second.json()["id"] == run["id"]
        await assert_one_project_each(stack, run["subject"])

    async def test_concurrent_starts_create_one_run_and_one_project(self, stack: Stack) -> None:
        responses = await asyncio.gather(*(stack.start("OPP-0012") for _ in range(6)))
        run_ids = {r.json()["id"] for r in responses}
        assert len(run_ids) == 1 and sorted(r.status_code for r in responses) == [200] * 5 + [202]
        run = await stack.wait(run_ids.pop())
        assert run["status"] == "succeeded"
        await assert_one_project_each(stack, run["subject"])

    async def test_idempotency_key_replays_and_refuses_a_different_body(self, stack: Stack) -> None:
        first = await stack.start("OPP-0015", key="key-0015-abc")
        again = await stack.start("OPP-0015", key="key-0015-abc")
        assert again.json()["id"] == first.json()["id"]
        other = await stack.start("OPP-0018", key="key-0015-abc")
        assert other.status_code == 422 and other.json()["code"] == "idempotency_key_mismatch"
        assert other.headers["content-type"].startswith("application/problem+json")

    async def test_missing_idempotency_key_is_refused_and_starts_nothing(self, stack: Stack) -> None:
        response = await stack.http.post("/process/provisioning/v1/runs", json={"opportunity_id": "OPP-0021"})
        assert response.status_code in (400, 422) and response.json()["status"] == response.status_code
        runs = (await stack.http.get("/process/provisioning/v1/runs")).json()["items"]
        assert runs == []

    async def test_unknown_opportunity_is_404_and_starts_nothing(self, stack: Stack) -> None:
        response = await stack.start("OPP-9999")
        assert response.status_code == 404 and response.json()["code"] == "unknown_opportunity"
        assert (await stack.http.get("/process/provisioning/v1/runs")).json()["items"] == []

    async def test_closed_won_event_starts_the_run_once(self, stack: Stack) -> None:
        event = {"specversion": "1.0", "id": "evt-1", "source": "/crm/salesforce", "type":
                 "psconnect.crm.opportunity.closed_won", "data": {"opportunity_id": "OPP-0024"}}
        first = await stack.http.post("/process/provisioning/v1/crm-events", json=event)
        duplicate = await stack.http.post("/process/provisioning/v1/crm-events", json={**event, "id": "evt-2"})
        assert first.status_code == 202 and duplicate.json()["id"] == first.json()["id"]
        run = await stack.wait(first.json()["id"])
        assert run["status"] == "succeeded"
        await assert_one_project_each(stack, run["subject"])
        wrong = await stack.http.post("/process/provisioning/v1/crm-events", json={**event, "type": "x.y"})
        assert wrong.status_code == 422


class TestFaults:
    async def test_429_and_5xx_storm_completes_with_one_project_each(self, stack: Stack) -> None:
        stack.sim("erp").faults.add(Fault(kind="rate_limit", count=8, retry_after=0))
        stack.sim("erp").faults.add(Fault(kind="server_error", status=503, count=6))
        stack.sim("psa").faults.add(Fault(kind="rate_limit", count=6, retry_after=0))
        stack.sim("psa").faults.add(Fault(kind="server_error", status=502, count=4))
        stack.sim("crm").faults.add(Fault(kind="server_error", status=500, count=3))
        run = await stack.provision("OPP-0027")
        assert run["status"] == "succeeded", run
        await assert_one_project_each(stack, run["subject"])
        assert stack.sim("erp").faults.injected >= 14 and stack.sim("psa").faults.injected >= 10

    @pytest.mark.parametrize("accounts", VENDOR_SETS)
    async def test_vendor_down_fails_the_run_into_the_queue_then_replay_completes(
            self, tmp_path: Path, accounts: dict[str, dict[str, Any]]) -> None:
        # Production retry pacing: honour Retry-After up to the breaker's cool-down after the outage.
        patient = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=6)
        async with running_stack(tmp_path, retry=patient, connections=firm_accounts(tmp_path, accounts)) as stack:
            await self._outage_then_replay(stack)

    async def _outage_then_replay(self, stack: Stack) -> None:
        stack.sim("psa").faults.add(Fault(kind="server_error", status=503))  # down until cleared
        run = await stack.provision("OPP-0030")
        assert run["status"] == "failed"
        psa_step = next(s for s in run["steps"] if s["name"] == "psa_project")
        assert psa_step["state"] == "failed" and psa_step["attempts"] >= 2
        record = (await stack.http.get(f"/process/provisioning/v1/exceptions/{run['exception_id']}")).json()
        assert record["reason"] == "vendor_unavailable" and record["owner"] == "integration-operations"
        assert await projects(stack, "erp", run["subject"]) == 1  # the ERP write is kept, not redone

        stack.sim("psa").faults.clear()
        replay = await stack.http.post(f"/process/provisioning/v1/exceptions/{record['id']}/replay")
        assert replay.status_code == 202 and replay.json()["attempt"] == 2
        done = await stack.wait(run["id"])
        assert done["status"] == "succeeded"
        await assert_one_project_each(stack, run["subject"])


class TestExceptions:
    async def test_missing_tax_id_raises_an_owned_exception_then_replay_after_fix(self, stack: Stack) -> None:
        run = await stack.provision("OPP-0003")
        assert run["status"] == "needs_attention"
        assert [s["state"] for s in run["steps"]][:3] == ["succeeded", "failed", "pending"]
        record = (await stack.http.get(f"/process/provisioning/v1/exceptions/{run['exception_id']}")).json()
        assert (record["reason"], record["owner"], record["status"]) == \
            ("missing_tax_id", "finance-master-data", "open")
        subject = run["subject"]
        assert (await projects(stack, "erp", subject), await projects(stack, "psa", subject)) == (0, 0)
        listed = (await stack.http.get("/process/provisioning/v1/exceptions", params={"status": "open"})).json()
        assert [e["id"] for e in listed["items"]] == [record["id"]]

        opp = (await stack.http.get("/system/crm/v1/opportunities/OPP-0003")).json()
        account = (await stack.http.get(f"/system/crm/v1/accounts/{opp['account_id']}")).json()
        fixed = {"name": account["name"], "billing_address": account["billing_address"],
                 "currency": account["currency"], "tax_id": "GB555666777"}
        put = await stack.http.put(f"/system/crm/v1/accounts/by-external-id/{account['external_id']}", json=fixed)
        assert put.status_code == 200

        replay = await stack.http.post(f"/process/provisioning/v1/exceptions/{record['id']}/replay")
        assert replay.status_code == 202
        done = await stack.wait(run["id"])
        assert done["status"] == "succeeded" and done["attempt"] == 2
        await assert_one_project_each(stack, run["subject"])
        resolved = (await stack.http.get(f"/process/provisioning/v1/exceptions/{record['id']}")).json()
        assert resolved["status"] == "resolved" and resolved["replay_count"] == 1

        again = await stack.http.post(f"/process/provisioning/v1/exceptions/{record['id']}/replay")
        assert again.status_code == 409 and again.json()["code"] == "not_replayable"

    async def test_concurrent_replays_start_one_attempt(self, stack: Stack) -> None:
        run = await stack.provision("OPP-0006")  # unknown legal entity: replay fails again, once
        replays = await asyncio.gather(*(stack.http.post(
            f"/process/provisioning/v1/exceptions/{run['exception_id']}/replay") for _ in range(4)))
        assert sorted(r.status_code for r in replays) == [202, 409, 409, 409]
        again = await stack.wait(run["id"])
        assert again["attempt"] == 2 and again["status"] == "needs_attention"


@pytest.mark.postgres
async def test_provisioning_and_replay_on_postgresql(tmp_path: Path) -> None:
    async with postgres_database() as url, running_stack(tmp_path, database_url=url) as stack:
        run = await stack.provision("OPP-0001")
        assert run["status"] == "succeeded"
        await assert_one_project_each(stack, run["subject"])
        broken = await stack.provision("OPP-0003")
        assert broken["status"] == "needs_attention"
        assert stack.gateway.settings.workflow_database_url.startswith("postgresql")


class TestErpWithoutMilestones:
    async def test_a_time_and_materials_deal_survives_a_storm_and_a_milestone_deal_is_owned(
            self, tmp_path: Path) -> None:
        async with running_stack(tmp_path, connections=firm_accounts(tmp_path, {"erp": ERP_ACCOUNTS["xero"]})) as stack:
            capabilities = await stack.http.get("/system/erp/v1/capabilities", params={"legal_entity": "US01"})
            assert capabilities.json()["time_posting"] == "summarised"  # the home entities' ERP is Xero's now
            xero = stack.sim("erp", "US01")
            xero.faults.add(Fault(kind="rate_limit", count=6, retry_after=0))
            xero.faults.add(Fault(kind="server_error", status=503, count=4))
            run = await stack.provision("OPP-0001")  # tm_standard
            assert run["status"] == "succeeded", run
            assert xero.faults.injected >= 10
            await assert_one_project_each(stack, run["subject"])

            milestones = await stack.provision("OPP-0002")  # fixed_fee_milestones
            assert milestones["status"] == "needs_attention", milestones
            record = (await stack.http.get(
                f"/process/provisioning/v1/exceptions/{milestones['exception_id']}")).json()
            assert (record["reason"], record["owner"]) == ("milestones_unsupported", "finance-master-data")
            subject = milestones["subject"]
            assert (await projects(stack, "erp", subject), await projects(stack, "psa", subject)) == (0, 0)
