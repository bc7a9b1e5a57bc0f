"""Revenue recognised by a month-end run, per project and period, as finance reads it.

UK01's October is billed: its time-and-materials projects recognise exactly the billable value the ERP holds,
its fixed fees stay within their contract values, each (project, period) publishes `revenue.recognized` once
(a re-run with nothing new publishes nothing), and the work-in-progress widget shows recognised minus billed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from contracts.events import REVENUE_RECOGNIZED
from process_apis.event_feed import EventFeed
from tests.integration.process_apis.time_to_bill.ttb_stack import BASE, PERIOD, TtbStack, ttb_stack


async def _all(t: TtbStack, path: str, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        response = await t.http.get(path, params={**params, "limit": "200", **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json().get("next_cursor")
        if not cursor:
            return items


def _revenue_events(t: TtbStack) -> list[dict[str, Any]]:
    return [f.event.data for f in EventFeed(t.engine).after(0, 100_000) if f.event.type == REVENUE_RECOGNIZED]


async def test_a_billing_run_recognises_revenue_by_contract_and_publishes_it_once(tmp_path: Path) -> None:
    async with ttb_stack(tmp_path) as t:
        assert (await t.bill("UK01"))["status"] in ("succeeded", "needs_attention")
        schedule = await _all(t, f"{BASE}/revenue", legal_entity_code="UK01")
        assert schedule and {line["legal_entity_code"] for line in schedule} == {"UK01"}
        october = {line["project"]: line for line in schedule if line["period"] == PERIOD}

        posted: dict[str, Decimal] = defaultdict(Decimal)
        for row in t.ledger_rows(legal_entity_code="UK01"):
            if row["kind"] in ("time", "reversal") and row["erp_time_id"] and row["billable"] \
                    and row["date"].isoformat().startswith(PERIOD):
                posted[row["project"]] += Decimal(row["amount"])
        methods = Counter(line["method"] for line in october.values())
        assert methods["time_and_materials"] > 0, methods
        for project, line in october.items():
            if line["method"] == "time_and_materials":
                assert Decimal(line["recognised"]["amount"]) == posted[project], project
            if line["contract_value"] is not None and line["method"] in ("milestones", "percent_complete"):
                assert Decimal(line["cumulative"]["amount"]) <= Decimal(line["contract_value"]["amount"]), line
            assert Decimal(line["work_in_progress"]["amount"]) == \
                Decimal(line["cumulative"]["amount"]) - Decimal(line["billed_cumulative"]["amount"])

        events = _revenue_events(t)
        keys = Counter((e["project"], e["period"]) for e in events)
        assert keys and max(keys.values()) == 1
        assert {(p, PERIOD) for p, line in october.items() if Decimal(line["recognised"]["amount"])} <= set(keys)
        assert (await t.bill("UK01"))["status"] in ("succeeded", "needs_attention")
        assert len(_revenue_events(t)) == len(events)  # nothing new recognised: nothing published again

        wip = (await t.http.get("/experience/dashboards/v1/work-in-progress",
                                params={"legal_entity": "UK01", "period": PERIOD, "limit": 200})).json()
        by_project = {i["project"]: i for i in wip["items"]}
        assert set(by_project) == set(october)
        for project, line in october.items():
            assert by_project[project]["work_in_progress"] == line["work_in_progress"]
        backlog = await _all(t, "/experience/dashboards/v1/backlog", legal_entity="UK01", period=PERIOD)
        practice = backlog[0]["practice"]
        narrowed = await _all(t, "/experience/dashboards/v1/work-in-progress", legal_entity="UK01", period=PERIOD,
                              practice=practice)
        assert {i["project"] for i in narrowed} == {b["project"] for b in backlog if b["practice"] == practice} \
            & set(october)
        [total] = wip["totals"]
        assert Decimal(total["work_in_progress"]["amount"]) == sum(
            (Decimal(i["work_in_progress"]["amount"]) for i in wip["items"]), Decimal(0))
        assert wip["group_total"] is None and wip["rates"] == []

        # In a group currency: each project's figures converted at UK01's rate for October's last day, then added.
        usd = (await t.http.get("/experience/dashboards/v1/work-in-progress", params={
            "legal_entity": "UK01", "period": PERIOD, "currency": "USD", "limit": 200})).json()
        [rate] = usd["rates"]
        assert (rate["base"], rate["quote"]) == ("GBP", "USD") and rate["date"] <= "2026-10-31", rate
        group = usd["group_total"]
        for field in ("recognised", "billed"):
            for item in usd["items"]:
                assert Decimal(item[f"converted_{field}"]["amount"]["amount"]) == (
                    Decimal(item[field]["amount"]) * Decimal(rate["rate"])).quantize(Decimal("0.01"), ROUND_HALF_UP)
            assert Decimal(group[field]["amount"]) == sum(
                (Decimal(i[f"converted_{field}"]["amount"]["amount"]) for i in usd["items"]), Decimal(0))
        assert group["currency"] == "USD" and Decimal(group["work_in_progress"]["amount"]) == \
            Decimal(group["recognised"]["amount"]) - Decimal(group["billed"]["amount"])
        unknown = await t.http.get("/experience/dashboards/v1/work-in-progress",
                                   params={"legal_entity": "UK01", "period": PERIOD, "currency": "XXX"})
        assert unknown.status_code == 422 and unknown.json()["code"] == "rate_unavailable", unknown.text
