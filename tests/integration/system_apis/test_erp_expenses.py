"""Every ERP, one contract: approved expenses posted as project costs, once per line, and read back.

The same journey runs against each ERP vendor package over its simulator's real wire format, through the
canonical `/system/erp/v1` routes only: post a batch of expense lines for an employee on an active project,
post the same batch again (nothing twice), post a line already posted under another batch key (reported
posted with its first record, nothing twice), reverse a line with a negative amount, and read every line
back from `/posted-expenses` to the cent. A line in a closed period is refused per line with
`period_closed` and posts nothing; the rest of its batch still posts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from system_apis import registry
from tests.integration.system_apis.vendor_kit import PACE, domain_api, vendor_http

ApiClient = AsyncTestClient[Litestar]
ERP = "/system/erp/v1"
ERPS = ("netsuite", "businesscentral", "xero")


@pytest.fixture(params=ERPS)
async def erp(request: pytest.FixtureRequest) -> AsyncIterator[ApiClient]:
    package = {p.name: p for p in registry.installed()}[request.param]
    simulator = registry.load_simulator(package)
    async with vendor_http(simulator.app, package.base_url) as http, \
            domain_api(package.create_router(http, retry=PACE)) as client:
        yield client


async def _items(client: ApiClient, path: str, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        response = await client.get(f"{ERP}{path}", params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return items


class Setting:
    """An active project, an employee of its legal entity, and the entity's first open and a closed period."""

    def __init__(self, project: dict[str, Any], employee: str, open_day: str, closed_day: str | None) -> None:
        self.project, self.employee, self.open_day, self.closed_day = project, employee, open_day, closed_day

    def line(self, key: str, amount: str, *, category: str = "Travel", billable: bool = True,
             day: str | None = None, **extra: Any) -> dict[str, Any]:
        return {"line_key": key, "project_external_id": self.project["external_id"],
                "employee_external_id": self.employee, "date": day or self.open_day, "category": category,
                "amount": {"amount": amount, "currency": self.project["currency"]}, "billable": billable,
                "memo": f"expense {key}", **extra}

    def batch(self, key: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
        return {"batch_key": key, "legal_entity_id": self.project["legal_entity_id"], "lines": lines}


async def _setting(client: ApiClient) -> Setting:
    projects = [p for p in await _items(client, "/projects", limit="200") if p["status"] == "active"]
    project = projects[0]
    periods = await _items(client, "/accounting-periods", legal_entity_id=project["legal_entity_id"])
    open_period = min((p for p in periods if not p["is_closed"] and not p["ar_locked"]),
                      key=lambda p: p["start_date"])
    closed = [p for p in periods if p["is_closed"]]
    employee = "W-77001"
    response = await client.put(f"{ERP}/employees/by-external-id/{employee}", json={
        "name": "Expense Tester", "email": "expense.tester@example.com",
        "legal_entity_id": project["legal_entity_id"], "cost_center": "CC-100",
        "cost_rate": {"amount": "80.00", "currency": project["currency"]}, "active": True})
    assert response.status_code in (200, 201), response.text
    day = open_period["start_date"][:8] + "15"
    return Setting(project, employee, day, closed[0]["start_date"][:8] + "15" if closed else None)


async def _posted(client: ApiClient, project: str) -> dict[str, dict[str, Any]]:
    rows = await _items(client, "/posted-expenses", project_external_id=project, limit="1000")
    keys = [r["line_key"] for r in rows]
    assert len(keys) == len(set(keys)), f"a line key posted twice: {sorted(keys)}"
    return {r["line_key"]: r for r in rows}


async def test_expenses_post_once_per_line_and_read_back_to_the_cent(erp: ApiClient) -> None:
    s = await _setting(erp)
    spent_in = "GBP" if s.project["currency"] != "GBP" else "USD"
    lines = [s.line("EXP-1:a", "215.40"),
             s.line("EXP-2:a", "49.00", category="Mileage", original_amount={"amount": "38.71", "currency": spent_in},
                    receipt_url="https://receipts.example.com/EXP-2.pdf"),
             s.line("EXP-3:a", "91.75", category="Software", billable=False)]
    response = await erp.post(f"{ERP}/expense-postings", json=s.batch("EXPB-0001", lines))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["batch_key"] == "EXPB-0001" and set(result["posted"]) == {"EXP-1:a", "EXP-2:a", "EXP-3:a"}
    assert result["failed"] == {}

    again = await erp.post(f"{ERP}/expense-postings", json=s.batch("EXPB-0001", lines))
    assert again.status_code == 200 and again.json()["posted"] == result["posted"]
    read = await erp.get(f"{ERP}/expense-postings/EXPB-0001")
    assert read.status_code == 200 and read.json()["posted"] == result["posted"]

    # A line posted before, sent again under another batch key (a retried step that split its batch): not twice.
    other = await erp.post(f"{ERP}/expense-postings", json=s.batch("EXPB-0002", [lines[0]]))
    assert other.status_code == 200 and other.json()["posted"] == {"EXP-1:a": result["posted"]["EXP-1:a"]}

    # The expense changed after posting: its old version is reversed with a negative line.
    reversal = s.line("EXP-1:a:rev", "-215.40")
    reversed_ = await erp.post(f"{ERP}/expense-postings", json=s.batch("EXPB-0003", [reversal]))
    assert reversed_.status_code == 200 and set(reversed_.json()["posted"]) == {"EXP-1:a:rev"}, reversed_.text

    posted = await _posted(erp, s.project["external_id"])
    assert {"EXP-1:a", "EXP-2:a", "EXP-3:a", "EXP-1:a:rev"} <= set(posted)
    assert Decimal(posted["EXP-1:a"]["amount"]["amount"]) == Decimal("215.40")
    assert Decimal(posted["EXP-1:a:rev"]["amount"]["amount"]) == Decimal("-215.40")
    assert posted["EXP-2:a"]["category"] == "Mileage" and posted["EXP-3:a"]["billable"] is False
    assert all(p["amount"]["currency"] == s.project["currency"] for p in posted.values())
    assert posted["EXP-1:a"]["id"] == result["posted"]["EXP-1:a"]
    assert posted["EXP-1:a"]["employee_external_id"] == s.employee and posted["EXP-1:a"]["date"] == s.open_day
    in_window = await _items(erp, "/posted-expenses", project_external_id=s.project["external_id"],
                             **{"from": s.open_day, "to": s.open_day})
    assert {r["line_key"] for r in in_window} >= {"EXP-1:a", "EXP-2:a"}
    assert await _items(erp, "/posted-expenses", project_external_id=s.project["external_id"],
                        **{"from": "2001-01-01", "to": "2001-01-31"}) == []


async def test_a_closed_period_refuses_its_line_only(erp: ApiClient) -> None:
    s = await _setting(erp)
    if s.closed_day is None:
        pytest.fail("the simulator's demo books must hold a closed period to refuse into")
    lines = [s.line("EXP-C:a", "130.00", day=s.closed_day), s.line("EXP-O:a", "60.00")]
    response = await erp.post(f"{ERP}/expense-postings", json=s.batch("EXPB-C001", lines))
    assert response.status_code == 200, response.text
    result = response.json()
    assert set(result["posted"]) == {"EXP-O:a"}
    assert set(result["failed"]) == {"EXP-C:a"} and result["refusals"] == {"EXP-C:a": "period_closed"}
    assert "EXP-C:a" not in await _posted(erp, s.project["external_id"])


async def test_an_unknown_batch_is_a_404_and_a_bad_batch_a_422(erp: ApiClient) -> None:
    assert (await erp.get(f"{ERP}/expense-postings/EXPB-NOPE-1")).status_code == 404
    s = await _setting(erp)
    bad = s.batch("EXPB-BAD1", [])
    response = await erp.post(f"{ERP}/expense-postings", json=bad)
    assert response.status_code == 422, response.text
    assert (await erp.get(f"{ERP}/expense-postings/EXPB-BAD1")).status_code == 404


@pytest.mark.parametrize("amount", ["770307146618714484889744774386.35", "12.345", "1.5E+3"],
                         ids=["33 digits", "a fraction of a cent", "exponent notation"])
async def test_an_amount_no_erp_books_as_sent_refuses_the_batch(erp: ApiClient, amount: str) -> None:
    s = await _setting(erp)
    batch = s.batch("EXPB-BIG1", [s.line("EXP-OK:a", "42.00"), s.line("EXP-BIG:a", amount)])
    response = await erp.post(f"{ERP}/expense-postings", json=batch)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["pointer"] == "/lines/1/amount/amount"
    assert (await erp.get(f"{ERP}/expense-postings/EXPB-BIG1")).status_code == 404
    assert await _posted(erp, s.project["external_id"]) == {}
