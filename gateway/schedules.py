"""The schedule file: which process start operations fire on their own, when, and in which time zone.

`gateway/schedules.yaml` (or the file $PSCONNECT_SCHEDULES names) is decoded once at
start-up, like the bindings: a bad file stops start-up with one line naming the file, the
entry and the field. Each entry names a start operation a process package declares
schedulable (`<process>.<action>`, e.g. `time_to_bill.post_time`), a cron expression read
in the entry's IANA time zone (a legal entity's working day is its own), and the
operation's parameters. `gateway/scheduler.py` hands the entries to DBOS.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from croniter import croniter  # type: ignore[import-untyped]

from process_apis.registry import ScheduledStart

__all__ = ["DEFAULT_FILE", "FORMAT_VERSION", "SCHEDULES_ENV", "Schedule", "ScheduleError", "ScheduleFile",
           "load_schedules"]

DEFAULT_FILE: Final = Path(__file__).with_name("schedules.yaml")
SCHEDULES_ENV: Final = "PSCONNECT_SCHEDULES"
FORMAT_VERSION: Final = 1
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class Schedule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    """Unique; the DBOS schedule name and the console's key (lower case, digits, dashes)."""
    run: str
    """`<process>.<action>`: a start operation the process declares schedulable."""
    cron: str
    """Five fields (minute hour day month weekday) or six with seconds first; `L` = last day of the month."""
    timezone: str = "UTC"
    params: dict[str, str] = {}
    description: str = ""

    @property
    def process(self) -> str:
        return self.run.split(".", 1)[0]

    @property
    def action(self) -> str:
        return self.run.split(".", 1)[1]


class ScheduleFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    format_version: int
    schedules: list[Schedule] = []


class ScheduleError(Exception):
    """The schedule file is invalid; the message names the file, the entry and the field."""


def load_schedules(schedulable: Mapping[str, Mapping[str, ScheduledStart[Any]]], path: Path | None = None,
                   ) -> list[Schedule]:
    """Decode and check the schedule file against the hosted processes' schedulable operations.

    `schedulable` is process name → action → operation. `path`, else $PSCONNECT_SCHEDULES,
    else the published `gateway/schedules.yaml`.
    """
    path = path or Path(os.environ.get(SCHEDULES_ENV) or DEFAULT_FILE)
    shown = _shown(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ScheduleError(f"{shown}: file not found") from exc
    try:
        decoded = msgspec.yaml.decode(raw, type=ScheduleFile)
    except msgspec.ValidationError as exc:
        raise ScheduleError(f"{shown}: {_where(str(exc), raw)}") from exc
    except msgspec.DecodeError as exc:
        raise ScheduleError(f"{shown}: {' '.join(str(exc).split())}") from exc
    if decoded.format_version != FORMAT_VERSION:
        raise ScheduleError(f"{shown}: format_version {decoded.format_version} is not supported "
                            f"(expected {FORMAT_VERSION})")
    seen: set[str] = set()
    for index, entry in enumerate(decoded.schedules):
        problem = _check(entry, schedulable, seen)
        if problem is not None:
            field, detail = problem
            raise ScheduleError(f"{shown}: schedules[{index}] ({entry.name!r}) field {field!r}: {detail}")
        seen.add(entry.name)
    return decoded.schedules


def _check(entry: Schedule, schedulable: Mapping[str, Mapping[str, ScheduledStart[Any]]],
           seen: set[str]) -> tuple[str, str] | None:
    if not NAME.match(entry.name):
        return "name", "lower-case letters, digits and dashes, at most 63 characters"
    if entry.name in seen:
        return "name", "another schedule has this name"
    process, _, action = entry.run.partition(".")
    if process not in schedulable:
        return "run", f"no hosted process {process!r} (hosted: {', '.join(sorted(schedulable)) or 'none'})"
    operation = schedulable[process].get(action)
    if operation is None:
        offered = ", ".join(f"{process}.{a}" for a in sorted(schedulable[process])) or "none"
        return "run", f"{process!r} has no schedulable operation {action!r} (offered: {offered})"
    fields = len(entry.cron.split())
    if fields not in (5, 6) or not croniter.is_valid(entry.cron, second_at_beginning=fields == 6):
        return "cron", f"{entry.cron!r} is not a cron expression of 5 fields (or 6 with seconds first)"
    try:
        ZoneInfo(entry.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return "timezone", f"{entry.timezone!r} is not an IANA time zone"
    for name, allowed in operation.params.items():
        value = entry.params.get(name)
        if not value:
            return f"params.{name}", f"required by {entry.run}"
        if allowed is not None and value not in allowed:
            return f"params.{name}", f"{value!r} is not one of {', '.join(allowed)}"
    for name, value in entry.params.items():
        if name in operation.params:
            continue
        if name not in operation.optional:
            known = sorted([*operation.params, *operation.optional])
            return f"params.{name}", f"{entry.run} takes no such parameter (takes: {', '.join(known) or 'none'})"
        if value not in operation.optional[name]:
            return f"params.{name}", f"{value!r} is not one of {', '.join(operation.optional[name])}"
    return None


def _where(message: str, raw: bytes) -> str:
    """msgspec's `at $.schedules[2].cron` spelled with the entry's name, as the file's reader knows it."""
    found = re.search(r"at `\$\.schedules\[(\d+)\]\.?([^`]*)`", message)
    if found is None:
        return " ".join(message.split())
    index, field = int(found.group(1)), found.group(2) or "(entry)"
    name = "?"
    try:
        entries = msgspec.yaml.decode(raw).get("schedules") or []
        name = str(entries[index].get("name", "?"))
    except (msgspec.DecodeError, AttributeError, IndexError, TypeError):
        pass
    detail = message[: found.start()].strip().rstrip("-").strip()
    return f"schedules[{index}] ({name!r}) field {field!r}: {detail}"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
