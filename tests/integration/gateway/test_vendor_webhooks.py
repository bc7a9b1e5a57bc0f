"""HubSpot's signed closed-won webhook, mounted by the gateway for CA01's HubSpot account: a deal won in the
acquired entity's CRM is provisioned into its own ERP and PSA with no API call of ours, once per deal however
often HubSpot delivers, and an unsigned delivery starts nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from system_apis.hubspot.simulator import HubSpotSimulator
from tests.stack import Stack, running_stack

PATH = "/webhooks/ca01-crm"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as s:
        yield s


async def deliver(stack: Stack, events: list[dict[str, Any]], secret: str = "sim-secret"
                  ) -> tuple[int, dict[str, Any]]:
    body = json.dumps(events).encode()
    url = stack.gateway.settings.issuer.rstrip("/") + PATH  # what HubSpot signs: the public URL it calls
    headers = HubSpotSimulator.webhook_headers(secret, url, body)
    response = await stack.http.post(PATH, content=body, headers={**headers, "Authorization": ""})
    return response.status_code, response.json()


async def test_a_won_deal_in_the_acquired_crm_is_provisioned_once_from_its_webhook(stack: Stack) -> None:
    hubspot = stack.gateway.simulator("crm", "CA01")
    assert isinstance(hubspot, HubSpotSimulator)
    deal = next(i for i, r in hubspot.records["deals"].items() if r["properties"]["dealstage"] != "closedwon")
    event = hubspot.stage_change(deal, "closedwon")

    status, unsigned = await deliver(stack, [event], secret="not-the-app-secret")
    assert status == 401 and unsigned["code"] == "signature_mismatch", unsigned
    runs = (await stack.http.get("/process/provisioning/v1/runs", params={"limit": 200})).json()["items"]
    assert not [r for r in runs if r["subject"] == f"ca01-crm:{deal}"]

    second = hubspot.stage_change(deal, "closedwon")  # another event for the same deal (HubSpot may send two)
    status, ack = await deliver(stack, [event, second])
    assert status == 200 and len(ack["handed_on"]) == 2, ack
    run = await stack.wait(f"prov_ca01-crm:{deal}")
    assert run["status"] == "succeeded", run
    assert str(run["result"]["erp_project_id"]).startswith("ca01-erp:")
    assert str(run["result"]["psa_project_id"]).startswith("ca01-certinia:")

    status, again = await deliver(stack, [{**event, "attemptNumber": 1}])  # HubSpot's redelivery
    assert status == 200 and again["duplicates"] == [ack["handed_on"][0]] and again["handed_on"] == []
    runs = (await stack.http.get("/process/provisioning/v1/runs", params={"limit": 200})).json()["items"]
    assert [r["attempt"] for r in runs if r["subject"] == f"ca01-crm:{deal}"] == [1]  # one run, started once
