"""Every ERP, one contract: an invoice's status and payments read back, and exchange rates.

The same journey runs against each ERP vendor package over its simulator's real wire format, through the
canonical `/system/erp/v1` routes only: draft an invoice, see it as a draft, post it, apply a partial
payment and then the rest, and find each change by the status poll's `updated_since`. A payment beyond
the amount due, against a draft, or in another currency changes nothing; the same payment key pays once.
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


async def _draft(client: ApiClient, key: str) -> dict[str, Any]:
    """A one-line draft on an active project of the ERP's first legal entity, in its first open period."""
    projects = [p for p in await _items(client, "/projects", limit="200") if p["status"] == "active"]
    project = projects[0]
    periods = [p for p in await _items(client, "/accounting-periods", legal_entity_id=project["legal_entity_id"])
               if not p["is_closed"] and not p["ar_locked"]]
    period = min(periods, key=lambda p: p["start_date"])["start_date"][:7]
    money = {"amount": "1000.00", "currency": project["currency"]}
    body = {"customer_id": project["customer_id"], "project_external_id": project["external_id"],
            "legal_entity_id": project["legal_entity_id"], "period": period, "currency": project["currency"],
            "lines": [{"kind": "time", "description": "Consulting", "quantity": "4", "unit_price":
                       {"amount": "250.00", "currency": project["currency"]}, "amount": money,
                       "source_keys": [f"{key}-line"]}]}
    response = await client.put(f"{ERP}/invoices/by-external-id/{key}", json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def _pay(invoice: dict[str, Any], amount: str, *, currency: str | None = None,
         day: str = "2026-11-20") -> dict[str, Any]:
    return {"invoice_external_id": invoice["external_id"], "legal_entity_id": invoice["legal_entity_id"],
            "date": day, "amount": {"amount": amount, "currency": currency or invoice["currency"]},
            "reference": "remittance 1"}


async def test_an_invoice_is_read_back_through_its_life(erp: ApiClient) -> None:
    draft = await _draft(erp, "INV-RCV-1")
    assert draft["status"] == "draft"
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)

    read = (await erp.get(f"{ERP}/invoices/by-external-id/INV-RCV-1")).json()
    assert read["status"] == "draft" and Decimal(read["total"]["amount"]) == Decimal("1000.00")

    # A payment against a draft is refused and changes nothing.
    refused = await erp.put(f"{ERP}/payments/by-external-id/PAY-RCV-0", json=_pay(draft, "100.00"))
    assert refused.status_code == 422 and refused.json()["code"] == "invoice_not_posted", refused.text

    posted = await erp.post(f"{ERP}/invoices/by-external-id/INV-RCV-1/post")
    assert posted.status_code == 200, posted.text
    invoice = posted.json()
    assert invoice["status"] in ("posted", "sent", "approved")
    assert Decimal(invoice["amount_due"]["amount"]) == Decimal("1000.00")
    assert invoice["issue_date"] is not None and invoice["due_date"] is not None
    assert invoice["due_date"] >= invoice["issue_date"]
    again = await erp.post(f"{ERP}/invoices/by-external-id/INV-RCV-1/post")
    assert again.status_code == 200 and again.json()["status"] == invoice["status"]

    over = await erp.put(f"{ERP}/payments/by-external-id/PAY-RCV-X", json=_pay(invoice, "1000.01"))
    assert over.status_code == 422 and over.json()["code"] == "overpayment", over.text
    other = "EUR" if invoice["currency"] != "EUR" else "USD"
    mismatch = await erp.put(f"{ERP}/payments/by-external-id/PAY-RCV-Y", json=_pay(invoice, "10.00", currency=other))
    assert mismatch.status_code == 422 and mismatch.json()["code"] == "currency_mismatch", mismatch.text

    first = await erp.put(f"{ERP}/payments/by-external-id/PAY-RCV-1", json=_pay(invoice, "400.00"))
    assert first.status_code == 201, first.text
    replay = await erp.put(f"{ERP}/payments/by-external-id/PAY-RCV-1", json=_pay(invoice, "400.00"))
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]

    partly = (await erp.get(f"{ERP}/invoices/by-external-id/INV-RCV-1")).json()
    assert partly["status"] == "partially_paid"
    assert Decimal(partly["amount_paid"]["amount"]) == Decimal("400.00")  # once, though sent twice
    assert Decimal(partly["amount_due"]["amount"]) == Decimal("600.00")

    changed = await _items(erp, "/invoices", updated_since=before.isoformat())
    assert [i["status"] for i in changed if i["external_id"] == "INV-RCV-1"] == ["partially_paid"]
    assert all(dt.datetime.fromisoformat(i["updated_at"]) >= before for i in changed)

    rest = await erp.put(f"{ERP}/payments/by-external-id/PAY-RCV-2", json=_pay(invoice, "600.00", day="2026-11-25"))
    assert rest.status_code == 201, rest.text
    paid = (await erp.get(f"{ERP}/invoices/by-external-id/INV-RCV-1")).json()
    assert paid["status"] == "paid" and Decimal(paid["amount_due"]["amount"]) == Decimal("0")
    assert paid["updated_at"] >= partly["updated_at"]


async def test_the_poll_misses_nothing_and_repeats_nothing_it_has_seen(erp: ApiClient) -> None:
    """The poll resumes at the newest `updated_at` it saw, inclusive: ERPs stamp to the second or coarser, so a
    change in that same second must still be listed; what is listed again unchanged is the poller's to skip."""
    await _draft(erp, "INV-RCV-A")
    await _draft(erp, "INV-RCV-B")
    everything = await _items(erp, "/invoices")
    latest = max(dt.datetime.fromisoformat(i["updated_at"]) for i in everything)
    assert {"INV-RCV-A", "INV-RCV-B"} <= {i["external_id"] for i in everything}
    seen = {i["external_id"]: i["updated_at"] for i in everything}
    again = await _items(erp, "/invoices", updated_since=latest.isoformat())
    assert again and all(seen[i["external_id"]] == i["updated_at"] and
                         dt.datetime.fromisoformat(i["updated_at"]) == latest for i in again)
    posted = (await erp.post(f"{ERP}/invoices/by-external-id/INV-RCV-B/post")).json()
    since = {i["external_id"]: i for i in await _items(erp, "/invoices", updated_since=latest.isoformat())}
    assert since["INV-RCV-B"]["status"] == posted["status"]
    assert dt.datetime.fromisoformat(since["INV-RCV-B"]["updated_at"]) >= latest
    assert set(since) <= set(seen)


async def test_an_unknown_invoice_is_a_404(erp: ApiClient) -> None:
    assert (await erp.get(f"{ERP}/invoices/by-external-id/INV-NOPE")).status_code == 404
    assert (await erp.post(f"{ERP}/invoices/by-external-id/INV-NOPE/post")).status_code == 404


KEEPS_RATES = {"netsuite": True, "businesscentral": True, "xero": False}
"""NetSuite (currencyRate records) and Business Central (currencyExchangeRates) keep dated rates; Xero's
accounting API publishes none (only the rate it used on each document), so it answers 404 ``rate_not_found``
and the process falls back to the configured rate table."""


async def test_exchange_rates_are_the_erps_own_or_a_clear_404(erp: ApiClient, request: pytest.FixtureRequest) -> None:
    vendor = request.node.callspec.params["erp"]
    entity = (await _items(erp, "/legal-entities"))[0]
    base = entity["currency"]
    quote = "EUR" if base != "EUR" else "USD"
    response = await erp.get(f"{ERP}/exchange-rates/{quote}/{base}", params={"on": "2026-10-31"})
    if not KEEPS_RATES[vendor]:
        assert response.status_code == 404 and response.json()["code"] == "rate_not_found", response.text
        return
    assert response.status_code == 200, response.text
    rate = response.json()
    assert (rate["base"], rate["quote"]) == (quote, base)
    assert Decimal(rate["rate"]) > 0 and rate["date"] <= "2026-10-31" and rate["source"] == "erp"
    earlier = (await erp.get(f"{ERP}/exchange-rates/{quote}/{base}", params={"on": "2026-10-01"})).json()
    assert earlier["date"] <= "2026-10-01"
    inverse = (await erp.get(f"{ERP}/exchange-rates/{base}/{quote}", params={"on": "2026-10-31"})).json()
    assert abs(Decimal(inverse["rate"]) * Decimal(rate["rate"]) - 1) < Decimal("0.001")
    unknown = await erp.get(f"{ERP}/exchange-rates/XTS/{base}", params={"on": "2026-10-31"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "rate_not_found"
    assert (await erp.get(f"{ERP}/exchange-rates/usd/{base}", params={"on": "2026-10-31"})).status_code == 422
