"""Kantata expense terms: read from workspace custom field values, what goes over the wire, faults, mapping edges.

The shared journey (`test_captured_expenses.py`) checks the terms of every seeded project; this file
checks what it cannot see: the terms travel with the workspace page (`include=custom_field_values`),
choice labels are fetched once for a page and then kept, a retried read still maps the same terms,
and the mapping's edge cases (minor units of other currencies, incomplete or malformed values).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contracts.common import Money
from contracts.psa import PsaProjectUpsert
from system_apis._internal.faults import Fault
from system_apis.demo_delivery import expense_terms
from system_apis.demo_firm import HOME_ENTITIES, firm_for
from system_apis.domains.psa import psa_router
from system_apis.kantata import BASE_URL, KantataClient, KantataPsa
from system_apis.kantata._expense_mapping import (
    CAP_PREFIX,
    CATEGORIES_FIELD,
    MARKUP_FIELD,
    RECEIPT_FIELD,
    expense_terms_of,
)
from system_apis.kantata.mapping import MappingError
from system_apis.kantata.simulator import KantataSimulator
from tests.integration.system_apis.vendor_kit import PACE, Sleeps, domain_api, vendor_http

FIRM = firm_for(HOME_ENTITIES)
PSA = "/system/psa/v1"


@pytest.fixture
def sim() -> KantataSimulator:
    return KantataSimulator()


@pytest.fixture
async def api(sim: KantataSimulator, sleeps: Sleeps) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with vendor_http(sim.app, BASE_URL) as http, \
            domain_api(psa_router(KantataPsa(KantataClient(http, retry=PACE, sleep=sleeps)))) as client:
        yield client


async def _all_projects(api: AsyncTestClient[Litestar], limit: int = 100) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        response = await api.get(f"{PSA}/projects", params={"limit": str(limit), **({"cursor": cursor} if cursor
                                                                                   else {})})
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json().get("next_cursor")
        if not cursor:
            return items


def _paths(sim: KantataSimulator, suffix: str) -> list[dict[str, str]]:
    return [r.query for r in sim.requests if r.method == "GET" and r.path == f"/api/v1/{suffix}.json"]


class TestWire:
    async def test_terms_travel_with_the_workspace_page_and_choices_are_fetched_once(
            self, sim: KantataSimulator, api: AsyncTestClient[Litestar]) -> None:
        projects = await _all_projects(api, limit=12)
        assert len(projects) == len(FIRM.projects) and all(p["expense_terms"] for p in projects)
        pages = _paths(sim, "workspaces")
        assert len(pages) == -(-len(FIRM.projects) // 12)
        assert all("custom_field_values" in q["include"].split(",") for q in pages)
        assert _paths(sim, "custom_field_values") == []  # never one call per workspace
        choice_calls = _paths(sim, "custom_field_choices")
        assert len(choice_calls) == 1  # the first page names every category; later pages hit the cache
        assert len(choice_calls[0]["for_choice_ids"].split(",")) == 4

        sim.requests.clear()
        again = await _all_projects(api, limit=12)
        assert again == projects and _paths(sim, "custom_field_choices") == []

    async def test_one_project_reads_its_terms_too(self, sim: KantataSimulator,
                                                   api: AsyncTestClient[Litestar]) -> None:
        seed = next(p for p in FIRM.projects if p.currency == "GBP" and p.billing_type == "mixed")
        listed = await api.get(f"{PSA}/projects", params={"external_id": seed.external_id})
        project = listed.json()["items"][0]
        got = await api.get(f"{PSA}/projects/{project['id']}")
        assert got.status_code == 200 and got.json() == project
        terms = project["expense_terms"]
        assert terms["markup_percent"] == "5" and terms["receipt_required_above"] == {"amount": "75.00",
                                                                                      "currency": "GBP"}
        assert terms["caps"] == {"Lodging": {"amount": "400.00", "currency": "GBP"},
                                 "Meals": {"amount": "100.00", "currency": "GBP"}}
        assert msgspec.convert(terms, type(expense_terms(seed)), strict=False) == expense_terms(seed)

    async def test_a_provisioned_workspace_holds_no_terms(self, api: AsyncTestClient[Litestar]) -> None:
        body = msgspec.to_builtins(PsaProjectUpsert(title="New work", client_name="Contoso Holdings",
                                                    budget=Money(amount=Decimal("1000.00"), currency="USD"),
                                                    billing_terms="time_and_materials"))
        created = await api.put(f"{PSA}/projects/by-external-id/OPP-7777", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["expense_terms"] is None

    async def test_the_simulator_answers_custom_field_values_like_kantata(self, sim: KantataSimulator) -> None:
        async with vendor_http(sim.app, BASE_URL) as http:
            headers = {"Authorization": "Bearer t"}
            refused = await http.get("/api/v1/custom_field_values.json", headers=headers)
            assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "subject_type"
            workspace = next(iter(sim.tables["workspaces"]))
            body = (await http.get("/api/v1/custom_field_values.json", headers=headers, params={
                "subject_type": "Workspace", "with_subject_id": workspace, "include": "custom_field"})).json()
            names = {v["custom_field_name"] for v in body["custom_field_values"].values()}
            assert names == {CATEGORIES_FIELD, MARKUP_FIELD, RECEIPT_FIELD, f"{CAP_PREFIX}Lodging",
                             f"{CAP_PREFIX}Meals"}
            assert {r["key"] for r in body["results"]} == {"custom_field_values"}
            assert {f["value_type"] for f in body["custom_fields"].values()} == {"multi", "number", "currency"}


class TestFaults:
    async def test_a_failed_choices_read_is_retried_and_maps_the_same_terms(
            self, sim: KantataSimulator, api: AsyncTestClient[Litestar], sleeps: Sleeps) -> None:
        sim.faults.add(Fault(kind="server_error", count=2, path=r"/custom_field_choices"))
        sim.faults.add(Fault(kind="rate_limit", count=1, path=r"/workspaces"))
        projects = {p["external_id"]: p["expense_terms"] for p in await _all_projects(api)}
        assert sim.faults.injected == 3 and len(sleeps.waits) == 3
        for seed in FIRM.projects:
            assert sorted(projects[seed.external_id]["billable_categories"]) == \
                sorted(expense_terms(seed).billable_categories)

    async def test_choices_that_stay_down_answer_a_problem_not_terms_without_categories(
            self, sim: KantataSimulator, api: AsyncTestClient[Litestar]) -> None:
        sim.faults.add(Fault(kind="server_error", path=r"/custom_field_choices"))
        response = await api.get(f"{PSA}/projects", params={"limit": "5"})
        assert response.status_code in (502, 503) and response.headers["content-type"].startswith(
            "application/problem+json")

    async def test_an_unknown_choice_is_refused_not_dropped(self, sim: KantataSimulator,
                                                            api: AsyncTestClient[Litestar]) -> None:
        # Dropping the unknown category would bill less than the contract says; the house answer to an
        # unreadable vendor record is the vendor-rejected problem (system_apis/problems.py).
        value = next(v for v in sim.tables["custom_field_values"].values()
                     if v["custom_field_name"] == CATEGORIES_FIELD)
        value["value"] = [*value["value"], "999999"]
        response = await api.get(f"{PSA}/projects", params={"limit": "100"})
        assert response.status_code == 422 and response.json()["code"] == "vendor_rejected"
        assert "choice 999999" in response.json()["detail"]


def _value(name: str, value_type: str, value: object, **extra: object) -> dict[str, Any]:
    return {"id": "1", "custom_field_name": name, "type": value_type, "value": value, **extra}


def _values(markup: object = 10, receipt: object = 7500, **caps: object) -> list[dict[str, Any]]:
    return [_value(CATEGORIES_FIELD, "multi", ["11", 12]), _value(MARKUP_FIELD, "number", markup),
            _value(RECEIPT_FIELD, "currency", receipt), _value("Account manager", "string", "Ann"),
            *(_value(f"{CAP_PREFIX}{k}", "currency", v) for k, v in caps.items())]


CHOICES = {"11": "Travel", "12": "Meals"}
USD = {"id": "5", "currency": "USD", "currency_base_unit": 100}


class TestMapping:
    def test_fields_map_to_terms_and_other_fields_are_ignored(self) -> None:
        terms = expense_terms_of(USD, _values(markup=12.5, Meals=10000), CHOICES)
        assert terms is not None
        assert terms.billable_categories == ["Travel", "Meals"] and terms.markup_percent == Decimal("12.5")
        assert terms.receipt_required_above == Money(amount=Decimal("75.00"), currency="USD")
        assert terms.caps == {"Meals": Money(amount=Decimal("100.00"), currency="USD")}

    def test_minor_units_follow_the_workspace_currency_unless_the_value_names_its_own(self) -> None:
        yen = {"id": "6", "currency": "JPY", "currency_base_unit": 1}
        terms = expense_terms_of(yen, _values(receipt="7500"), CHOICES)
        assert terms is not None and terms.receipt_required_above == Money(amount=Decimal("7500"), currency="JPY")
        values = [*_values()[:2], _value(RECEIPT_FIELD, "currency", 7500, currency="EUR")]
        terms = expense_terms_of(yen, values, CHOICES)
        assert terms is not None and terms.receipt_required_above == Money(amount=Decimal("75.00"), currency="EUR")

    @pytest.mark.parametrize("drop", [CATEGORIES_FIELD, MARKUP_FIELD, RECEIPT_FIELD])
    def test_a_workspace_missing_a_required_field_holds_no_terms(self, drop: str) -> None:
        assert expense_terms_of(USD, [v for v in _values() if v["custom_field_name"] != drop], CHOICES) is None
        cleared = [{**v, "value": None} if v["custom_field_name"] == drop else v for v in _values()]
        assert expense_terms_of(USD, cleared, CHOICES) is None
        assert expense_terms_of(USD, [], CHOICES) is None

    @pytest.mark.parametrize(("values", "message"), [
        (_values(markup="ten"), "not a number"), (_values(receipt=75.5), "minor units"),
        (_values(Lodging="40000.00"), "minor units"), (_values(receipt=True), "minor units")])
    def test_malformed_values_are_refused_not_guessed(self, values: list[dict[str, Any]], message: str) -> None:
        with pytest.raises(MappingError, match=message):
            expense_terms_of(USD, values, CHOICES)

    def test_an_unknown_choice_is_refused(self) -> None:
        with pytest.raises(MappingError, match="choice 12"):
            expense_terms_of(USD, _values(), {"11": "Travel"})


@pytest.fixture
async def http(sim: KantataSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with vendor_http(sim.app, BASE_URL) as client:
        yield client


async def test_choice_labels_are_asked_for_in_chunks_of_200(sim: KantataSimulator, http: httpx.AsyncClient) -> None:
    ids = [sim._insert("custom_field_choices", {"custom_field_id": "1", "label": f"C{i}"}) for i in range(250)]
    labels = await KantataClient(http).custom_field_choice_labels(ids)
    assert labels == {i: f"C{n}" for n, i in enumerate(ids)}
    calls = _paths(sim, "custom_field_choices")
    assert [len(q["for_choice_ids"].split(",")) for q in calls] == [200, 50]
