"""Harvest wire records <-> canonical time objects: pure mapping, round trips, missing optional fields."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from contracts.common import Money
from contracts.time import TimeEntry
from system_apis.harvest import _wire as wire
from system_apis.harvest.mapping import (
    money,
    project_to_canonical,
    status_flags,
    status_of,
    time_entry_to_canonical,
    time_entry_to_wire,
    uninvoiced_to_canonical,
)

UPDATED = dt.datetime(2026, 10, 5, 9, 30, tzinfo=dt.UTC)


def decode_entry(**changes: Any) -> wire.TimeEntry:
    record: dict[str, Any] = {
        "id": 636709355, "spent_date": "2026-10-02", "user": {"id": 1782959, "name": "Kim Allen"},
        "client": {"id": 5735774, "name": "ABC Corp"}, "project": {"id": 14307913, "name": "Marketing Website"},
        "task": {"id": 8083365, "name": "consultant"}, "hours": 2.11, "notes": "Adding CSS styling",
        "created_at": "2026-10-02T15:50:15Z", "updated_at": "2026-10-05T09:30:00Z", "is_locked": True,
        "locked_reason": "Item Approved and Locked for this Time Period", "is_closed": True, "is_billed": False,
        "billable": True, "billable_rate": 100.0, "cost_rate": 50.0, "external_reference": None,
        "user_assignment": {"id": 1, "hourly_rate": 100.0}, "timer_started_at": None, "is_running": False,
    }
    record.update(changes)
    return msgspec.json.decode(msgspec.json.encode(record), type=wire.TimeEntry)


def canonical(entry: wire.TimeEntry, currency: str = "USD") -> TimeEntry:
    return time_entry_to_canonical(entry, user_email="kim@example.com", project_code="PRJ-A0001", currency=currency)


class TestStatus:
    @pytest.mark.parametrize(("is_closed", "is_locked", "status"), [
        (True, True, "approved"), (True, None, "approved"), (False, True, "submitted"),
        (False, False, "draft"), (None, None, "draft")])
    def test_flags_to_status(self, is_closed: bool | None, is_locked: bool | None, status: str) -> None:
        assert status_of(is_closed, is_locked) == status

    @pytest.mark.parametrize("status", ["approved", "submitted", "draft"])
    def test_flags_round_trip(self, status: Any) -> None:
        is_closed, is_locked, reason = status_flags(status)
        assert status_of(is_closed, is_locked) == status
        assert (reason is None) == (status == "draft")

    def test_rejected_reads_as_draft_because_harvest_hands_it_back_unlocked(self) -> None:
        is_closed, is_locked, _ = status_flags("rejected")
        assert status_of(is_closed, is_locked) == "draft"


class TestTimeEntry:
    def test_approved_entry(self) -> None:
        entry = canonical(decode_entry())
        assert entry.id == "636709355" and entry.source == "harvest"
        assert entry.user_id == "1782959" and entry.user_email == "kim@example.com"
        assert entry.project_code == "PRJ-A0001"
        assert entry.date == dt.date(2026, 10, 2)
        assert entry.hours == Decimal("2.11")
        assert entry.status == "approved"
        assert entry.updated_at == UPDATED
        assert entry.task == "consultant" and entry.notes == "Adding CSS styling"
        assert entry.billable_rate == Money(amount=Decimal("100.00"), currency="USD")
        assert str(entry.billable_rate.amount) == "100.00"
        assert entry.is_billed is False

    def test_numbers_never_pass_through_float(self) -> None:
        entry = canonical(decode_entry(hours=0.3, billable_rate=187.35), currency="GBP")
        assert entry.hours == Decimal("0.3")
        assert entry.billable_rate == Money(amount=Decimal("187.35"), currency="GBP")

    def test_sub_cent_rate_is_kept_not_rounded(self) -> None:
        assert money(Decimal("12.345"), "EUR").amount == Decimal("12.345")
        assert str(money(Decimal("7"), "EUR").amount) == "7.00"

    def test_missing_optional_fields(self) -> None:
        raw = {"id": 1, "spent_date": "2026-10-02", "user": {"id": 2}, "project": {"id": 3}, "hours": 1.5,
               "created_at": "2026-10-02T10:00:00Z", "updated_at": "2026-10-02T10:00:00Z"}
        entry = canonical(msgspec.convert(raw, wire.TimeEntry, strict=False))
        assert entry.status == "draft"
        assert entry.task is None and entry.notes is None and entry.billable_rate is None
        assert entry.billable is False and entry.is_billed is False

    def test_non_billable_time_has_no_rate_even_if_harvest_sends_one(self) -> None:
        assert canonical(decode_entry(billable=False)).billable_rate is None
        assert canonical(decode_entry(billable_rate=None)).billable_rate is None

    def test_submitted_and_draft(self) -> None:
        submitted = canonical(decode_entry(is_closed=False, is_locked=True, locked_reason="Submitted for approval"))
        assert submitted.status == "submitted"
        assert canonical(decode_entry(is_closed=False, is_locked=False, locked_reason=None)).status == "draft"

    def test_empty_notes_are_none(self) -> None:
        assert canonical(decode_entry(notes="")).notes is None

    @pytest.mark.parametrize("status", ["approved", "submitted", "draft"])
    def test_round_trip_through_the_wire(self, status: Any) -> None:
        original = TimeEntry(id="42", source="harvest", user_id="7", user_email="kim@example.com",
                             project_code="PRJ-A0001", date=dt.date(2026, 10, 9), hours=Decimal("6.5"),
                             billable=True, status=status, updated_at=UPDATED, task="consultant", notes="Design",
                             billable_rate=Money(amount=Decimal("210.00"), currency="USD"))
        raw = time_entry_to_wire(original, project_id=14300000, task_id=8080001)
        back = canonical(msgspec.json.decode(msgspec.json.encode(raw), type=wire.TimeEntry))
        assert back == original


class TestProject:
    def test_project(self) -> None:
        project = msgspec.convert({"id": 14300001, "name": "Delivery 2", "code": "PRJ-A0002", "is_active": True,
                                   "is_billable": True, "client": {"id": 5, "name": "Contoso", "currency": "GBP"}},
                                  wire.Project)
        mapped = project_to_canonical(project)
        assert (mapped.id, mapped.code, mapped.client_name, mapped.currency) == ("14300001", "PRJ-A0002",
                                                                                 "Contoso", "GBP")
        assert mapped.is_active and mapped.is_billable

    def test_project_without_client_code_or_flags(self) -> None:
        mapped = project_to_canonical(msgspec.convert({"id": 1, "name": "Internal"}, wire.Project),
                                      default_currency="EUR")
        assert (mapped.code, mapped.client_name, mapped.currency) == ("", "", "EUR")
        assert not mapped.is_active and not mapped.is_billable


class TestUninvoiced:
    def test_row(self) -> None:
        row = msgspec.json.decode(b'{"project_id": 9, "project_name": "Task Force", "currency": "EUR", '
                                  b'"total_hours": 0.5, "uninvoiced_hours": 0.5, "uninvoiced_amount": 50}',
                                  type=wire.UninvoicedResult)
        mapped = uninvoiced_to_canonical(row, project_code="PRJ-A0009")
        assert mapped.uninvoiced_hours == Decimal("0.5")
        assert mapped.uninvoiced_amount == Money(amount=Decimal("50.00"), currency="EUR")

    def test_null_amounts_are_zero(self) -> None:
        row = msgspec.convert({"project_id": 9, "currency": "USD", "uninvoiced_hours": None,
                               "uninvoiced_amount": None}, wire.UninvoicedResult)
        mapped = uninvoiced_to_canonical(row, project_code="PRJ-A0009")
        assert mapped.uninvoiced_hours == 0 and mapped.uninvoiced_amount.amount == 0
        assert mapped.project_name == ""
