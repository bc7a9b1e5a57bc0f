"""A rerun after approved time changed: the ERP posting is reversed and reposted, the invoice credited,
and the run succeeds. Before, the hours-posted counter was handed the reversal's negative hours,
prometheus refused it, and the billing run crashed (`failed`, an internal_error exception) after
posting but before crediting — the invoice stayed overstated until the next run."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from foundation.metrics import exposition
from tests.integration.process_apis.time_to_bill.test_properties_stack import (
    ENTITY,
    PROJECT,
    World,
    change_after_approval,
    check,
    october_entries,
)
from tests.integration.process_apis.time_to_bill.ttb_stack import ttb_stack


def hours(direction: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(exposition().decode())
               for s in family.samples if s.name == "psconnect_time_posted_hours_total"
               and s.labels == {"legal_entity": ENTITY, "direction": direction})


async def test_a_rerun_after_an_approved_entry_changed_reverses_credits_and_succeeds(tmp_path: Path) -> None:
    async with ttb_stack(tmp_path) as s:
        assert (await s.bill(ENTITY))["status"] == "succeeded"
        w = World(asyncio.get_running_loop(), s)
        entry = october_entries(s, 2)[0]
        old = entry.hours
        posted_before, reversed_before = hours("posted"), hours("reversed")
        await change_after_approval(w, entry.id, Decimal("0.25"))

        run = await s.bill(ENTITY)
        assert run["status"] == "succeeded", (run, await s.exceptions())
        assert await s.exceptions() == []
        assert hours("reversed") - reversed_before == float(old)
        assert hours("posted") - posted_before == 0.25
        await check(w)  # invoiced − credited = approved hours × rate, each entry version posted once
        credits = await s.http.get("/system/erp/v1/credit-memos", params={"project_external_id": PROJECT})
        assert credits.status_code == 200 and len(credits.json()["items"]) == 1, credits.text
