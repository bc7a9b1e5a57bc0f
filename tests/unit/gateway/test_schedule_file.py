"""The schedule file is checked like the bindings: the published one loads; a bad one stops start-up with one
line naming the file, the entry and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.processes import Processes
from gateway.schedules import DEFAULT_FILE, ScheduleError, load_schedules
from process_apis.registry import ScheduledStart

GOOD = """format_version: 1
schedules:
  - name: nightly
    run: worker_sync.sync
    cron: "0 2 * * *"
  - name: posting-us01
    run: time_to_bill.post_time
    cron: "*/15 8-18 * * 1-5"
    timezone: America/New_York
    params: {legal_entity: US01}
"""


@pytest.fixture(scope="module")
def schedulable() -> dict[str, dict[str, ScheduledStart[Any]]]:
    hosted = Processes.create(demo_calendar=True).hosted
    return {name: dict(h.package.schedulable) for name, h in hosted.items()}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schedules.yaml"
    path.write_text(text)
    return path


def test_the_published_file_loads_with_the_nightly_sync_posting_month_end_runs_and_receivables_poll(
        schedulable: dict[str, dict[str, ScheduledStart[Any]]]) -> None:
    loaded = load_schedules(schedulable, DEFAULT_FILE)
    runs = {s.run for s in loaded}
    assert runs == {"worker_sync.sync", "time_to_bill.post_time", "time_to_bill.billing_run", "receivables.poll"}
    posting = {s.params["legal_entity"]: s.timezone for s in loaded if s.run == "time_to_bill.post_time"}
    assert posting == {"US01": "America/New_York", "UK01": "Europe/London", "DE01": "Europe/Berlin",
                       "CA01": "America/Toronto", "AU01": "Australia/Sydney"}  # every entity, in its own zone
    month_end = {s.params["legal_entity"] for s in loaded if s.run == "time_to_bill.billing_run"}
    assert month_end == set(posting)


def test_a_good_file_loads(tmp_path: Path, schedulable: dict[str, dict[str, ScheduledStart[Any]]]) -> None:
    loaded = load_schedules(schedulable, write(tmp_path, GOOD))
    assert [s.name for s in loaded] == ["nightly", "posting-us01"]
    assert loaded[1].process == "time_to_bill" and loaded[1].action == "post_time"


@pytest.mark.parametrize(("change", "names"), [
    (('cron: "0 2 * * *"', 'cron: "0 25 * * *"'), ["schedules[0] ('nightly')", "'cron'"]),
    (("timezone: America/New_York", "timezone: Mars/Olympus"), ["schedules[1] ('posting-us01')", "'timezone'"]),
    (("run: worker_sync.sync", "run: worker_sync.purge"), ["schedules[0] ('nightly')", "'run'", "worker_sync.sync"]),
    (("run: worker_sync.sync", "run: payroll.sync"), ["schedules[0]", "'run'", "no hosted process 'payroll'"]),
    (("params: {legal_entity: US01}", "params: {}"), ["schedules[1] ('posting-us01')", "'params.legal_entity'"]),
    (("params: {legal_entity: US01}", "params: {legal_entity: US01, period: last}"),
     ["schedules[1]", "'params.period'", "current, previous"]),
    (("params: {legal_entity: US01}", "params: {legal_entity: US01, dry_run: soon}"),
     ["schedules[1]", "'params.dry_run'"]),
    (("params: {legal_entity: US01}", "params: {legal_entity: true}"), ["schedules[1] ('posting-us01')", "'params"]),
    (("name: posting-us01", "name: nightly"), ["schedules[1] ('nightly')", "'name'", "another schedule"]),
    (("name: nightly", "name: Nightly Sync"), ["schedules[0] ('Nightly Sync')", "'name'"]),
    (('cron: "0 2 * * *"', "cron: 7"), ["schedules[0] ('nightly')", "'cron'", "Expected `str`"]),
    (('cron: "0 2 * * *"', 'cron: "0 2 * * *"\n    when: nightly'), ["schedules[0] ('nightly')", "when"]),
])
def test_a_bad_entry_stops_start_up_naming_file_entry_and_field(
        tmp_path: Path, schedulable: dict[str, dict[str, ScheduledStart[Any]]], change: tuple[str, str],
        names: list[str]) -> None:
    path = write(tmp_path, GOOD.replace(*change, 1))
    with pytest.raises(ScheduleError) as refused:
        load_schedules(schedulable, path)
    message = str(refused.value)
    assert "\n" not in message and "schedules.yaml" in message
    for name in names:
        assert name in message, message


def test_an_unknown_format_or_a_missing_file_is_refused(tmp_path: Path,
                                                        schedulable: dict[str, dict[str, ScheduledStart[Any]]]) -> None:
    with pytest.raises(ScheduleError, match="format_version 2 is not supported"):
        load_schedules(schedulable, write(tmp_path, GOOD.replace("format_version: 1", "format_version: 2")))
    with pytest.raises(ScheduleError, match="file not found"):
        load_schedules(schedulable, tmp_path / "absent.yaml")
