"""Workday staffing records <-> canonical workers and cost centers (pure mapping)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from contracts.common import Money
from contracts.workforce import CostCenter, Worker
from system_apis.demo_firm import demo_firm
from system_apis.workday.client import is_wid
from system_apis.workday.mapping import (
    MappingError,
    cost_center_from_record,
    cost_center_to_record,
    wid,
    worker_from_record,
    worker_to_record,
)

STAMP = dt.datetime(2026, 11, 2, 6, 0, tzinfo=dt.UTC)


def worker(**changes: Any) -> Worker:
    base = Worker(id="W-00042", name="Farid Lopez", email="farid.lopez42@meridian.example", legal_entity_code="UK01",
                  role="senior_consultant", practice="finance_transformation", cost_center="CC-UK01-2",
                  status="active", cost_rate=Money(amount=Decimal("91.25"), currency="GBP"),
                  hire_date=dt.date(2021, 3, 1))
    return Worker(**{**{f: getattr(base, f) for f in base.__struct_fields__}, **changes})


class TestWorkerRoundTrip:
    def test_every_demo_worker_survives_the_wire(self) -> None:
        for w in demo_firm().workers:
            assert worker_from_record(worker_to_record(w, last_updated=STAMP, tenant="t")) == w

    @pytest.mark.parametrize("status", ["active", "on_leave"])
    def test_employment_status_round_trips(self, status: str) -> None:
        w = worker(status=status)
        assert worker_from_record(worker_to_record(w, last_updated=STAMP, tenant="t")).status == status

    def test_terminated_worker_keeps_its_termination_date(self) -> None:
        w = worker(status="terminated", termination_date=dt.date(2026, 10, 16))
        record = worker_to_record(w, last_updated=STAMP, tenant="t")
        assert record["workerStatus"] == {"active": False, "onLeave": False, "hireDate": "2021-03-01",
                                          "terminationDate": "2026-10-16"}
        assert worker_from_record(record) == w


class TestWireShape:
    def test_worker_is_addressed_by_wid_and_carries_the_employee_id(self) -> None:
        record = worker_to_record(worker(), last_updated=STAMP, tenant="meridian")
        assert is_wid(record["id"]) and record["id"] == wid("worker", "W-00042")
        assert record["workerId"] == "W-00042" and record["descriptor"] == "Farid Lopez"
        assert record["href"] == f"/ccx/api/staffing/v6/meridian/workers/{record['id']}"
        assert record["primaryJob"]["supervisoryOrganization"]["descriptor"] == "Finance Transformation (UK01)"
        assert record["compensation"]["costRate"]["amount"] == "91.25"
        assert record["lastUpdated"] == "2026-11-02T06:00:00.000000Z"

    def test_employee_id_is_not_a_wid(self) -> None:
        assert not is_wid("W-00042") and not is_wid("A" * 32)


class TestEdgeCases:
    def test_inactive_flag_alone_means_terminated(self) -> None:
        record = worker_to_record(worker(), last_updated=STAMP, tenant="t")
        record["workerStatus"]["active"] = False
        assert worker_from_record(record).status == "terminated"

    def test_missing_email_and_termination_date_are_tolerated(self) -> None:
        record = worker_to_record(worker(), last_updated=STAMP, tenant="t")
        record["primaryWorkEmail"] = None
        del record["workerStatus"]["terminationDate"]
        mapped = worker_from_record(record)
        assert mapped.email == "" and mapped.termination_date is None

    def test_cost_rate_is_quantized_to_cents(self) -> None:
        record = worker_to_record(worker(), last_updated=STAMP, tenant="t")
        record["compensation"]["costRate"]["amount"] = "91.2"
        assert worker_from_record(record).cost_rate == Money(amount=Decimal("91.20"), currency="GBP")

    @pytest.mark.parametrize(("path", "field"), [
        (("costCenter",), "costCenter.code"),
        (("primaryJob", "company"), "primaryJob.company.id"),
        (("compensation",), "compensation.costRate.amount"),
        (("workerId",), "workerId"),
    ])
    def test_missing_required_reference_names_the_field(self, path: tuple[str, ...], field: str) -> None:
        record = worker_to_record(worker(), last_updated=STAMP, tenant="t")
        parent = record
        for part in path[:-1]:
            parent = parent[part]
        del parent[path[-1]]
        with pytest.raises(MappingError) as caught:
            worker_from_record(record)
        assert caught.value.field == field

    def test_unparseable_amount_and_date_are_mapping_errors(self) -> None:
        record = worker_to_record(worker(), last_updated=STAMP, tenant="t")
        record["compensation"]["costRate"]["amount"] = "lots"
        with pytest.raises(MappingError, match=r"compensation\.costRate\.amount"):
            worker_from_record(record)
        record = worker_to_record(worker(), last_updated=STAMP, tenant="t")
        record["workerStatus"]["hireDate"] = "yesterday"
        with pytest.raises(MappingError, match=r"workerStatus\.hireDate"):
            worker_from_record(record)


class TestCostCenter:
    def test_round_trip(self) -> None:
        center = CostCenter(id="CC-DE01-3", name="Meridian Advisory GmbH delivery 3", legal_entity_code="DE01")
        record = cost_center_to_record(center)
        assert is_wid(record["id"]) and record["organizationType"]["id"] == "Cost_Center"
        assert cost_center_from_record(record) == center

    def test_missing_company_is_a_mapping_error(self) -> None:
        record = cost_center_to_record(CostCenter(id="CC-X", name="x", legal_entity_code="US01"))
        del record["company"]
        with pytest.raises(MappingError, match=r"company\.id"):
            cost_center_from_record(record)
