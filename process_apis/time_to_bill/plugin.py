"""The time-to-bill process as the gateway hosts it (entry point `psconnect.processes: time_to_bill`)."""

from __future__ import annotations

import datetime as dt

from contracts.runs import Run
from process_apis.registry import Fire, HostOptions, ProcessPackage, ScheduledStart, SharedParts
from process_apis.time_to_bill.api import time_to_bill_router
from process_apis.time_to_bill.rules import period_of
from process_apis.time_to_bill.runtime import build_runtime, configure
from process_apis.time_to_bill.service import TimeToBillService
from process_apis.time_to_bill.workflow import PROCESS as NAME

__all__ = ["PROCESS"]


def _service(options: HostOptions) -> TimeToBillService:
    return TimeToBillService(as_of=options.as_of)


def _configure(parts: SharedParts) -> None:
    configure(build_runtime(parts))


def _period(fire: Fire) -> str:
    """The month a fire bills, from its local date: `previous` for a cut-off that falls after month-end."""
    day = fire.at.date()
    if fire.params.get("period", "current") == "previous":
        day = day.replace(day=1) - dt.timedelta(days=1)
    return period_of(day)


async def _scheduled_run(service: TimeToBillService, fire: Fire) -> Run:
    """The month-end run at an entity's cut-off: the client's start of the entity's billing run."""
    run, _ = await service.start_run(fire.params["legal_entity"], _period(fire), fire.idempotency_key)
    return run


async def _scheduled_posting(service: TimeToBillService, fire: Fire) -> Run:
    """Near-real-time posting during the working day: the period's posting-only run, no invoice drafts."""
    run, _ = await service.start_run(fire.params["legal_entity"], _period(fire), fire.idempotency_key,
                                     invoice=False)
    return run


_PARAMS = {"legal_entity": None}
_PERIODS = {"period": ("current", "previous")}

PROCESS: ProcessPackage[TimeToBillService] = ProcessPackage(
    name=NAME, service=_service, router=time_to_bill_router, configure=_configure,
    replay=TimeToBillService.replay_run, resume_unstarted=TimeToBillService.resume_unstarted,
    schedulable={"post_time": ScheduledStart(_scheduled_posting, params=_PARAMS, optional=_PERIODS),
                 "billing_run": ScheduledStart(_scheduled_run, params=_PARAMS, optional=_PERIODS)})
