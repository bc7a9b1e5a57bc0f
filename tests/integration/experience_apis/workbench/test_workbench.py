"""The exception workbench through the gateway: filter, assign, comment, resolve, replay — all audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.stack import Stack, running_stack

WB = "/experience/workbench/v1"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as s:
        yield s


async def raise_exceptions(stack: Stack) -> dict[str, str]:
    """Provision the three broken demo deals; returns reason -> exception id."""
    out = {}
    for opp in ("OPP-0003", "OPP-0006", "OPP-0009"):
        run = await stack.provision(opp)
        record = (await stack.http.get(f"/process/provisioning/v1/exceptions/{run['exception_id']}")).json()
        out[record["reason"]] = record["id"]
    return out


async def test_list_filters_by_owner_reason_and_assignee(stack: Stack) -> None:
    ids = await raise_exceptions(stack)
    everything = (await stack.http.get(f"{WB}/exceptions")).json()["items"]
    assert {i["exception"]["id"] for i in everything} == set(ids.values())
    master_data = (await stack.http.get(f"{WB}/exceptions", params={"owner": "finance-master-data"})).json()
    assert {i["exception"]["reason"] for i in master_data["items"]} == {"missing_tax_id", "unknown_legal_entity"}
    await stack.http.post(f"{WB}/exceptions/{ids['currency_mismatch']}/assignment", json={"assignee": "dana.sales"})
    mine = (await stack.http.get(f"{WB}/exceptions", params={"assignee": "dana.sales"})).json()["items"]
    assert [i["exception"]["reason"] for i in mine] == ["currency_mismatch"]
    old = (await stack.http.get(f"{WB}/exceptions", params={"older_than_hours": 1})).json()["items"]
    assert old == []  # all raised just now
    paged = (await stack.http.get(f"{WB}/exceptions", params={"limit": 2})).json()
    rest = (await stack.http.get(f"{WB}/exceptions", params={"limit": 2, "cursor": paged["next_cursor"]})).json()
    assert len(paged["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None


async def test_every_action_is_audited_with_actor_and_change(stack: Stack) -> None:
    ids = await raise_exceptions(stack)
    eid = ids["missing_tax_id"]
    await stack.http.post(f"{WB}/exceptions/{eid}/assignment", json={"assignee": "mo.masterdata"})
    await stack.http.post(f"{WB}/exceptions/{eid}/assignment", json={"assignee": "li.masterdata"})
    comment = await stack.http.post(f"{WB}/exceptions/{eid}/comments", json={"text": "VAT number requested"})
    assert comment.status_code == 201 and comment.json()["author"] == stack.client_id

    detail = (await stack.http.get(f"{WB}/exceptions/{eid}")).json()
    assert detail["item"]["assignee"] == "li.masterdata" and detail["item"]["comment_count"] == 1
    assert [c["text"] for c in detail["comments"]] == ["VAT number requested"]
    trail = [(a["action"], a["actor"], a["changes"]) for a in detail["audit"]]
    assert trail == [
        ("assign", stack.client_id, {"assignee": [None, "mo.masterdata"]}),
        ("assign", stack.client_id, {"assignee": ["mo.masterdata", "li.masterdata"]}),
        ("comment", stack.client_id, {"comment": [None, comment.json()["id"]]}),
    ]


async def test_replay_from_the_workbench_runs_the_owning_process(stack: Stack) -> None:
    ids = await raise_exceptions(stack)
    eid = ids["missing_tax_id"]
    opp = (await stack.http.get("/system/crm/v1/opportunities/OPP-0003")).json()
    account = (await stack.http.get(f"/system/crm/v1/accounts/{opp['account_id']}")).json()
    await stack.http.put(f"/system/crm/v1/accounts/by-external-id/{account['external_id']}", json={
        "name": account["name"], "billing_address": account["billing_address"], "currency": account["currency"],
        "tax_id": "GB123123123"})
    replayed = await stack.http.post(f"{WB}/exceptions/{eid}/replay")
    assert replayed.status_code == 202 and replayed.json()["run"]["attempt"] == 2
    run = await stack.wait(replayed.json()["run"]["id"])
    assert run["status"] == "succeeded"
    detail = (await stack.http.get(f"{WB}/exceptions/{eid}")).json()
    assert detail["item"]["exception"]["status"] == "resolved"
    assert detail["audit"][-1]["action"] == "replay" and detail["audit"][-1]["changes"]["attempt"] == [None, "2"]


async def test_resolve_closes_an_open_exception_once(stack: Stack) -> None:
    ids = await raise_exceptions(stack)
    eid = ids["unknown_legal_entity"]
    first = await stack.http.post(f"{WB}/exceptions/{eid}/resolution",
                                  json={"resolution": "Deal re-booked under DE01 by sales ops"})
    assert first.status_code == 200 and first.json()["exception"]["status"] == "resolved"
    again = await stack.http.post(f"{WB}/exceptions/{eid}/resolution", json={"resolution": "twice"})
    assert again.status_code == 409 and again.json()["code"] == "not_open"
    replay = await stack.http.post(f"{WB}/exceptions/{eid}/replay")
    assert replay.status_code == 409


@pytest.mark.parametrize(("path", "body"), [
    ("assignment", {"assignee": ""}), ("comments", {"text": ""}), ("resolution", {"resolution": "x"}),
    ("assignment", {"assignee": "a", "extra": 1}),
])
async def test_bad_input_is_a_problem_and_changes_nothing(stack: Stack, path: str, body: dict[str, object]) -> None:
    eid = (await raise_exceptions(stack))["currency_mismatch"]
    answer = await stack.http.post(f"{WB}/exceptions/{eid}/{path}", json=body)
    assert answer.status_code in (400, 422) and answer.headers["content-type"].startswith("application/problem+json")
    assert (await stack.http.get(f"{WB}/exceptions/{eid}")).json()["audit"] == []


async def test_unknown_exception_is_404(stack: Stack) -> None:
    answer = await stack.http.post(f"{WB}/exceptions/exc_nope/assignment", json={"assignee": "x"})
    assert answer.status_code == 404
