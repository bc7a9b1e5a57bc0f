"""BambooHR employee fields -> canonical workers: money strings, statuses, dates, the firm's conventions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from system_apis.bamboohr.mapping import MappingError, employee_fields, money_from_bamboo, worker_from_employee
from system_apis.demo_firm import demo_firm


def _read(fields: dict[str, Any]) -> Any:
    return worker_from_employee({"id": "101", **fields}, default_entity="CA01", default_currency="CAD")


def test_every_seeded_worker_survives_the_round_trip() -> None:
    for worker in demo_firm().workers[:200]:
        back = _read(employee_fields(worker))
        assert (back.name, back.email, back.role, back.practice, back.cost_center, back.status, back.cost_rate,
                back.hire_date, back.termination_date, back.legal_entity_code) == (
            worker.name, worker.email, worker.role, worker.practice, worker.cost_center, worker.status,
            worker.cost_rate, worker.hire_date, worker.termination_date, worker.legal_entity_code)


def test_money_fields_are_amount_space_currency_and_stay_decimal() -> None:
    assert money_from_bamboo("92.40 CAD", "USD").amount == Decimal("92.40")
    assert money_from_bamboo("1,250.00", "CAD").currency == "CAD"
    with pytest.raises(MappingError):
        money_from_bamboo("ninety CAD", "CAD")


def test_hourly_pay_stands_in_for_the_cost_rate_but_a_salary_does_not() -> None:
    base = {"displayName": "Ada Tremblay", "hireDate": "2025-03-01", "jobTitle": "Senior Consultant"}
    assert _read({**base, "payRate": "61.50 CAD", "payPer": "Hour"}).cost_rate.amount == Decimal("61.50")
    with pytest.raises(MappingError, match="hourly cost rate"):
        _read({**base, "payRate": "98000.00 CAD", "payPer": "Year"})


@pytest.mark.parametrize(("status", "history", "expected"), [
    ("Active", "Full-Time", "active"), ("Active", "Leave of Absence", "on_leave"), ("Inactive", "", "terminated"),
    ("Active", "Terminated", "terminated"),
])
def test_status_from_status_and_employment_history(status: str, history: str, expected: str) -> None:
    worker = _read({"status": status, "employmentHistoryStatus": history, "hireDate": "2025-03-01",
                    "terminationDate": "2026-10-16", "customHourlyCostRate": "50.00 CAD"})
    assert worker.status == expected
    assert worker.termination_date == (dt.date(2026, 10, 16) if expected == "terminated" else None)


def test_empty_division_and_zero_dates_fall_back() -> None:
    worker = _read({"division": "", "hireDate": "2025-03-01", "terminationDate": "0000-00-00",
                    "customHourlyCostRate": "50.00", "firstName": "Ada", "lastName": "Tremblay"})
    assert worker.legal_entity_code == "CA01" and worker.cost_rate.currency == "CAD" and worker.name == "Ada Tremblay"
    with pytest.raises(MappingError, match="hire date"):
        _read({"hireDate": "0000-00-00", "customHourlyCostRate": "50.00 CAD"})
