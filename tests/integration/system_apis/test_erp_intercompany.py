"""Every ERP, one contract: each side of an intercompany charge recorded once in its own entity's books.

A consultant of one legal entity staffed on another's project is charged by the employer (a receivable in its
ERP, the counterparty its customer) to the project's entity (a payable in its ERP, the counterparty its supplier),
at the transfer rate. The same journey runs against each ERP vendor package over its simulator's wire format,
through the canonical `/system/erp/v1` routes only: record both sides (the counterparty need not be known to
the ERP yet, nor the consultant or the other entity's project), record them again (nothing twice), read them
back by period and counterparty to the cent, in the charge's currency even when it is not the entity's own; a
charge dated in a closed period is refused and records nothing.
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


async def _entity(client: ApiClient) -> tuple[dict[str, Any], str, str, str | None]:
    """The ERP's first legal entity, a project of its own, its first open period and a closed one."""
    entity = (await _items(client, "/legal-entities"))[0]
    project = next(p for p in await _items(client, "/projects", limit="200")
                   if p["status"] == "active" and p["legal_entity_id"] == entity["id"])
    periods = await _items(client, "/accounting-periods", legal_entity_id=entity["id"])
    open_period = min((p for p in periods if not p["is_closed"] and not p["ar_locked"]), key=lambda p: p["start_date"])
    closed = [p for p in periods if p["is_closed"]]
    return entity, project["external_id"], open_period["start_date"][:7], closed[0]["start_date"][:7] if closed \
        else None


def _charge(entity: dict[str, Any], side: str, counterparty: str, period: str, currency: str,
            project: str) -> dict[str, Any]:
    rate = {"amount": "96.25", "currency": currency}
    return {"legal_entity_id": entity["id"], "counterparty": counterparty, "side": side, "period": period,
            "currency": currency, "memo": f"Consultants seconded, {period}",
            "lines": [{"line_key": "TE-9001:ab12", "project_external_id": project, "employee_external_id": "W-00042",
                       "date": f"{period}-07", "hours": "6.5", "transfer_rate": rate,
                       "amount": {"amount": "625.63", "currency": currency}},
                      {"line_key": "TE-9002:cd34:rev", "project_external_id": project,
                       "employee_external_id": "W-00042", "date": f"{period}-08", "hours": "-2",
                       "transfer_rate": rate, "amount": {"amount": "-192.50", "currency": currency}}]}


async def test_both_sides_are_recorded_once_and_read_back_to_the_cent(erp: ApiClient) -> None:
    entity, project, period, _ = await _entity(erp)
    counterparty = "US01" if entity["code"] != "US01" else "UK01"
    foreign = "GBP" if entity["currency"] != "GBP" else "USD"

    receivable = _charge(entity, "receivable", counterparty, period, entity["currency"], "PRJ-ELSEWHERE-1")
    first = await erp.put(f"{ERP}/intercompany-charges/by-external-id/IC-T1-R", json=receivable)
    assert first.status_code == 201, first.text
    recorded = first.json()
    assert recorded["external_id"] == "IC-T1-R" and recorded["side"] == "receivable"
    assert recorded["counterparty"] == counterparty and Decimal(recorded["total"]["amount"]) == Decimal("433.13")
    again = await erp.put(f"{ERP}/intercompany-charges/by-external-id/IC-T1-R", json=receivable)
    assert again.status_code == 200 and again.json()["id"] == recorded["id"], again.text

    # The payable side, in the employer's currency (not this entity's), on this entity's own project.
    payable = _charge(entity, "payable", counterparty, period, foreign, project)
    created = await erp.put(f"{ERP}/intercompany-charges/by-external-id/IC-T1-P", json=payable)
    assert created.status_code == 201, created.text
    assert created.json()["currency"] == foreign
    assert created.json()["total"] == {"amount": "433.13", "currency": foreign}

    listed = await _items(erp, "/intercompany-charges", period=period, counterparty=counterparty)
    by_id = {c["external_id"]: c for c in listed}
    assert sorted(by_id) == ["IC-T1-P", "IC-T1-R"] and len(listed) == 2
    for charge, sent in ((by_id["IC-T1-R"], receivable), (by_id["IC-T1-P"], payable)):
        assert charge["side"] == sent["side"] and charge["period"] == period
        assert [(ln["line_key"], Decimal(ln["hours"]), Decimal(ln["amount"]["amount"]), ln["project_external_id"],
                 ln["employee_external_id"]) for ln in charge["lines"]] == \
            [(ln["line_key"], Decimal(ln["hours"]), Decimal(ln["amount"]["amount"]), ln["project_external_id"],
              ln["employee_external_id"]) for ln in sent["lines"]]
        assert Decimal(charge["total"]["amount"]) == Decimal("433.13")
    assert await _items(erp, "/intercompany-charges", period=period, counterparty="ZZ99") == []
    other_period = f"{int(period[:4]) - 1}-{period[5:]}"
    assert await _items(erp, "/intercompany-charges", period=other_period) == []


async def test_a_closed_period_refuses_the_charge_and_records_nothing(erp: ApiClient) -> None:
    entity, project, _, closed = await _entity(erp)
    if closed is None:
        pytest.fail("the simulator's demo books must hold a closed period to refuse into")
    counterparty = "US01" if entity["code"] != "US01" else "UK01"
    body = _charge(entity, "payable", counterparty, closed, entity["currency"], project)
    response = await erp.put(f"{ERP}/intercompany-charges/by-external-id/IC-T2-P", json=body)
    assert response.status_code == 422 and response.json()["code"] == "period_closed", response.text
    assert await _items(erp, "/intercompany-charges", period=closed) == []


async def test_a_charge_without_lines_or_with_a_bad_counterparty_is_a_422(erp: ApiClient) -> None:
    entity, project, period, _ = await _entity(erp)
    body = _charge(entity, "receivable", "US01" if entity["code"] != "US01" else "UK01", period, entity["currency"],
                   project)
    assert (await erp.put(f"{ERP}/intercompany-charges/by-external-id/IC-T3-R",
                          json={**body, "lines": []})).status_code == 422
    assert (await erp.put(f"{ERP}/intercompany-charges/by-external-id/IC-T3-R",
                          json={**body, "counterparty": "us01"})).status_code == 422
    assert await _items(erp, "/intercompany-charges", period=period) == []


@pytest.mark.parametrize(("field", "value", "pointer"), [
    ("amount", {"amount": "770307146618714484889744774386.35", "currency": None}, "/lines/0/amount/amount"),
    ("amount", {"amount": "625.625", "currency": None}, "/lines/0/amount/amount"),
    ("amount", {"amount": "625.63", "currency": "XTG"}, "/lines/0/amount/currency"),
    ("hours", "9939609928152939609928152.5", "/lines/0/hours"),
    ("transfer_rate", {"amount": "1E+3", "currency": None}, "/lines/0/transfer_rate/amount"),
], ids=["33 digits", "a fraction of a cent", "another currency", "27-digit hours", "exponent notation"])
async def test_an_amount_no_erp_books_as_sent_is_a_422_that_records_nothing(erp: ApiClient, field: str, value: Any,
                                                                            pointer: str) -> None:
    entity, project, period, _ = await _entity(erp)
    body = _charge(entity, "receivable", "US01" if entity["code"] != "US01" else "UK01", period, entity["currency"],
                   project)
    if isinstance(value, dict) and value["currency"] is None:
        value = {**value, "currency": entity["currency"]}
    body["lines"][0][field] = value
    response = await erp.put(f"{ERP}/intercompany-charges/by-external-id/IC-T4-R", json=body)
    assert response.status_code == 422, response.text
    assert pointer in [e["pointer"] for e in response.json()["errors"]], response.text
    assert await _items(erp, "/intercompany-charges", period=period) == []
