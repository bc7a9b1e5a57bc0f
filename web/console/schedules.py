"""The schedules as the console shows them, and what it needs from the host to pause and resume them.

The console does not run schedules: the gateway does (gateway/scheduler.py). It hands the
console a `ScheduleBoard`, as it hands the portal its client registry, so web/ does not
import the runtime.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import msgspec

from foundation.audit import Via

__all__ = ["ScheduleBoard", "ScheduleView"]


class ScheduleView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    run: str
    cron: str
    timezone: str
    params: dict[str, str]
    description: str
    state: str
    """active | paused | off (this deployment runs no schedules)."""
    next_fire: dt.datetime | None
    last_fire: dt.datetime | None
    last_outcome: str | None
    """started | skipped | failed."""
    last_run_id: str | None
    last_detail: str | None


class ScheduleBoard(Protocol):
    async def overview(self) -> list[ScheduleView]: ...

    async def set_paused(self, name: str, paused: bool, actor: str, via: Via | None = None) -> ScheduleView: ...
