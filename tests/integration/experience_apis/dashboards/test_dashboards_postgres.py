"""The billing facts on PostgreSQL (what distributed mode stores them in): same figures as the ledger says."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.experience_apis.dashboards.expected import Expected, money
from tests.integration.process_apis.time_to_bill.ttb_stack import PERIOD, ttb_stack
from tests.stack import postgres_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

BASE = "/experience/dashboards/v1"


async def test_projection_on_postgres_matches_the_ledger(tmp_path: Path) -> None:
    async with postgres_database() as url, ttb_stack(tmp_path, database_url=url) as s:
        run = await s.bill("DE01")
        assert run["status"] == "succeeded", run
        want = Expected(s.engine)

        report = (await s.http.get(f"{BASE}/utilization", params={"period": PERIOD})).json()
        figures = want.worker_figures("DE01", PERIOD)
        for field, key in (("capacity_hours", "capacity"), ("planned_hours", "planned"), ("actual_hours", "actual"),
                           ("billable_hours", "billable")):
            assert Decimal(report["totals"][field]) == sum((f[key] for f in figures.values()), Decimal(0)), field

        margin = want.margin("DE01", PERIOD)
        page = (await s.http.get(f"{BASE}/margin", params={"period": PERIOD, "limit": 200})).json()
        assert [i["project"] for i in page["items"]] == sorted(margin)
        assert {i["project"]: (i["revenue"]["amount"], i["cost"]["amount"]) for i in page["items"]} == \
            {p: (money(f["revenue"]), money(f["cost"])) for p, f in margin.items()}
        assert [t["currency"] for t in page["totals"]] == ["EUR"]
