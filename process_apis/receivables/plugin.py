"""The receivables process as the gateway hosts it (entry point `psconnect.processes: receivables`)."""

from __future__ import annotations

from contracts.runs import Run
from process_apis.receivables.api import receivables_router
from process_apis.receivables.runtime import build_runtime, configure
from process_apis.receivables.service import ReceivablesService
from process_apis.receivables.workflow import PROCESS as NAME
from process_apis.registry import Fire, ProcessPackage, ScheduledStart, SharedParts

__all__ = ["PROCESS"]


def _configure(parts: SharedParts) -> None:
    configure(build_runtime(parts))


async def _scheduled_poll(service: ReceivablesService, fire: Fire) -> Run:
    run, _ = await service.start(fire.params.get("mode", "changes") == "full", idempotency_key=fire.idempotency_key)
    return run


PROCESS: ProcessPackage[ReceivablesService] = ProcessPackage(
    name=NAME, service=lambda _options: ReceivablesService(), router=receivables_router, configure=_configure,
    replay=ReceivablesService.replay, resume_unstarted=ReceivablesService.resume_unstarted,
    schedulable={"poll": ScheduledStart(_scheduled_poll, optional={"mode": ("changes", "full")})})
