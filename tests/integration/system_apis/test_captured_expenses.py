"""Every system that captures expenses, one contract: the time domain's `/expenses`, and the PSA's expense terms.

Harvest (time), Kantata (PSA, and time for a firm that captures it there) and Certinia (PSA and time, for the
acquired CA01) hold expenses; Kantata and Certinia hold the contracts' expense terms. Each runs over its
simulator's real wire format, through the canonical routes only, and is checked against the demo firm the
simulators seed from (`system_apis/demo_delivery.py`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from system_apis import registry
from system_apis.demo_delivery import DEMO_PERIOD, defect_expenses, expense_terms, expenses
from system_apis.demo_firm import DemoFirm, demo_firm, firm_for
from tests.integration.system_apis.vendor_kit import PACE, domain_api, vendor_http

ApiClient = AsyncTestClient[Litestar]
TIME = "/system/time/v1"
PSA = "/system/psa/v1"
SEEDED: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "harvest": (("US01", "UK01", "DE01"), {}),
    "kantata": (("US01", "UK01", "DE01"), {"demo_time": True}),
    "certinia": (("CA01",), {"demo_time": True}),
}
"""Vendor -> (the legal entities its simulator seeds by default, the simulator options of the demo)."""
CAPTURES_UNITS = frozenset({"harvest", "certinia"})
"""The vendors whose expenses carry a quantity and unit price; a Kantata expense is an amount only."""


async def _client(vendor: str) -> AsyncIterator[tuple[ApiClient, DemoFirm]]:
    package = {p.name: p for p in registry.installed()}[vendor]
    entities, options = SEEDED[vendor]
    simulator = registry.load_simulator(package, legal_entities=entities, options=options)
    async with vendor_http(simulator.app, package.base_url) as http, \
            domain_api(package.create_router(http, retry=PACE)) as client:
        yield client, firm_for(entities, demo_firm())


@pytest.fixture(params=("harvest", "kantata", "certinia"))
async def time_system(request: pytest.FixtureRequest) -> AsyncIterator[tuple[ApiClient, DemoFirm]]:
    async for pair in _client(request.param):
        yield pair


@pytest.fixture(params=("kantata", "certinia"))
async def psa_system(request: pytest.FixtureRequest) -> AsyncIterator[tuple[ApiClient, DemoFirm]]:
    async for pair in _client(request.param):
        yield pair


async def _items(client: ApiClient, path: str, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        response = await client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= int(params.get("limit", 500))
        items += body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return items


async def test_approved_expenses_are_listed_as_the_firm_spent_them(time_system: tuple[ApiClient, DemoFirm]) -> None:
    client, firm = time_system
    start, end = DEMO_PERIOD
    seeded = [e for e in [*expenses(firm.projects, firm.workers, start, end),
                          *defect_expenses(firm.projects, firm.workers)] if start <= e.date <= end]
    approved = {e.id: e for e in seeded if e.status == "approved"}
    listed = await _items(client, f"{TIME}/expenses", status="approved", limit="97",
                          **{"from": start.isoformat(), "to": end.isoformat()})
    assert len(listed) == len(approved), (len(listed), len(approved))
    assert all(e["status"] == "approved" and start.isoformat() <= e["date"] <= end.isoformat() for e in listed)
    emails = {w.id: w.email.lower() for w in firm.workers}
    for seed in approved.values():
        found = [e for e in listed if e["date"] == seed.date.isoformat() and e["project_code"] ==
                 seed.project_external_id and e["user_email"].lower() == emails[seed.worker_id]
                 and e["category"] == seed.category and Decimal(e["amount"]["amount"]) == seed.amount]
        assert len(found) == 1, f"{seed} listed {len(found)} times"
        expense = found[0]
        assert expense["amount"]["currency"] == seed.currency and expense["billable"] is seed.billable
        assert (expense["receipt_url"] is not None) is seed.has_receipt
        if seed.units is not None and expense["source"] in CAPTURES_UNITS:
            assert Decimal(expense["units"]) == seed.units and expense["unit_price"] is not None
        elif seed.units is not None:
            assert expense["units"] is None and expense["unit_price"] is None
    assert len({e["id"] for e in listed}) == len(listed)

    one = listed[0]
    read = await client.get(f"{TIME}/expenses/{one['id']}")
    assert read.status_code == 200 and read.json() == one
    assert (await client.get(f"{TIME}/expenses/999999999")).status_code == 404


async def test_expenses_filter_by_project_and_change_time(time_system: tuple[ApiClient, DemoFirm]) -> None:
    client, firm = time_system
    project = firm.projects[0].external_id
    mine = await _items(client, f"{TIME}/expenses", project_code=project)
    assert mine and all(e["project_code"] == project for e in mine)
    everything = await _items(client, f"{TIME}/expenses")
    latest = max(dt.datetime.fromisoformat(e["updated_at"]) for e in everything)
    later = await _items(client, f"{TIME}/expenses", updated_since=(latest + dt.timedelta(seconds=1)).isoformat())
    assert later == []
    assert {e["id"] for e in await _items(client, f"{TIME}/expenses", updated_since=latest.isoformat())} <= \
        {e["id"] for e in everything}
    statuses = {e["status"] for e in everything}
    assert "submitted" in statuses  # the unapproved ones are there unless filtered out
    # An instant without an offset is UTC (a vendor whose filter counts whole seconds may add the same second's
    # earlier changes, never miss one); a code with a comma names no project (not a list of two).
    naive = latest.astimezone(dt.UTC).replace(tzinfo=None).isoformat()
    since = {e["id"]: dt.datetime.fromisoformat(e["updated_at"])
             for e in await _items(client, f"{TIME}/expenses", updated_since=naive)}
    assert {e["id"] for e in everything if dt.datetime.fromisoformat(e["updated_at"]) >= latest} <= since.keys()
    assert all(at >= latest.replace(microsecond=0) for at in since.values())
    other = firm.projects[1].external_id
    assert await _items(client, f"{TIME}/expenses", project_code=f"{project},{other}") == []


async def test_the_contracts_expense_terms_come_from_the_psa(psa_system: tuple[ApiClient, DemoFirm]) -> None:
    client, firm = psa_system
    projects = {p["external_id"]: p for p in await _items(client, f"{PSA}/projects", limit="100")}
    for seed in firm.projects:
        terms = projects[seed.external_id]["expense_terms"]
        expected = expense_terms(seed)
        assert terms is not None, seed.external_id
        assert sorted(terms["billable_categories"]) == sorted(expected.billable_categories)
        assert Decimal(terms["markup_percent"]) == expected.markup_percent
        assert Decimal(terms["receipt_required_above"]["amount"]) == expected.receipt_required_above.amount
        assert terms["receipt_required_above"]["currency"] == seed.currency
        assert {k: Decimal(v["amount"]) for k, v in terms["caps"].items()} == \
            {k: v.amount for k, v in expected.caps.items()}
