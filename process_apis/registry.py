"""How a process package declares itself to the gateway, and how the gateway finds them.

Each process package exports one `ProcessPackage` (its `plugin.PROCESS`) and names it
under the entry-point group `psconnect.processes` in `pyproject.toml`. The gateway hosts
whatever that group lists: it builds each service before the app (the routes need it),
fills each runtime from the shared parts once the gateway's internal client exists, and
registers each replayer — it names no process itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx
import sqlalchemy as sa
from litestar import Router

from contracts.runs import Run
from foundation.retry import RetryPolicy

if TYPE_CHECKING:
    from process_apis.exchange_rates import RateTable

__all__ = ["ENTRY_POINT_GROUP", "Fire", "HostOptions", "ProcessPackage", "ScheduledStart", "SharedParts",
           "TokenSource", "discover"]

ENTRY_POINT_GROUP = "psconnect.processes"
S = TypeVar("S")
TokenSource = Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class HostOptions:
    """What the host decides for every process before the app exists."""

    as_of: dt.date | None = None
    """The firm's 'today' for date checks (the demo calendar); None means the real date."""


@dataclass(frozen=True)
class SharedParts:
    """What every runtime is built from: the database, and the system APIs through the gateway as a service."""

    engine: sa.Engine
    http: httpx.AsyncClient
    token: TokenSource
    retry: RetryPolicy
    rate_table: RateTable | None = None
    """The configured daily exchange rates (`PSCONNECT_RATE_TABLE`); None: the demo firm's shipped table."""
    transfer_markup: Callable[[str, str], Decimal] | None = None
    """(employer, project entity) -> markup % on a seconded consultant's cost (the connections file's
    `intercompany:`); None: cost plus nothing."""


@dataclass(frozen=True)
class Fire:
    """One firing of a schedule, as the process's start operation sees it."""

    at: dt.datetime
    """The scheduled instant, in the schedule's time zone (its date is the firm's local date)."""
    params: Mapping[str, str]
    """The schedule entry's parameters, already checked against `ScheduledStart.params`."""
    idempotency_key: str
    """Stable per schedule and instant: a fire executed twice starts (or finds) one run."""


@dataclass(frozen=True)
class ScheduledStart(Generic[S]):
    """A start operation a schedule may fire: the same idempotent start a client calls, with its parameters."""

    start: Callable[[S, Fire], Awaitable[Run]]
    params: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)
    """Parameter name → its allowed values (None: any non-empty text); every one named here is required."""
    optional: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Optional parameter name → its allowed values (the first is the default)."""


@dataclass(frozen=True)
class ProcessPackage(Generic[S]):
    """One process API: how to build its service and runtime, its routes, its replay and resume hooks."""

    name: str
    """The process name runs and exceptions carry (`runs.process`, `ExceptionRecord.process`)."""
    service: Callable[[HostOptions], S]
    router: Callable[[S], Router]
    configure: Callable[[SharedParts], None]
    """Build the runtime from the shared parts and put it where the process's steps read it."""
    replay: Callable[[S, str], Awaitable[Run]]
    """Replay an open exception of this process (the workbench's replay); the run it started or joined."""
    resume_unstarted: Callable[[S], Awaitable[int]]
    """Hand runs recorded but never started (a crash between two writes) to DBOS; how many."""
    schedulable: Mapping[str, ScheduledStart[S]] = field(default_factory=dict)
    """The start operations a schedule file may name, as `<process>.<action>`."""


def discover() -> list[ProcessPackage[Any]]:
    """Every process package installed under `psconnect.processes`, in entry-point name order."""
    found: list[ProcessPackage[Any]] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        package = ep.load()
        if not isinstance(package, ProcessPackage):
            raise TypeError(f"entry point {ep.name!r} of {ENTRY_POINT_GROUP} is not a ProcessPackage: {ep.value}")
        if package.name != ep.name:
            raise ValueError(f"entry point {ep.name!r} declares process {package.name!r}")
        found.append(package)
    return found
