"""The worker-sync process as the gateway hosts it (entry point `psconnect.processes: worker_sync`)."""

from __future__ import annotations

from contracts.runs import Run
from process_apis.registry import Fire, ProcessPackage, ScheduledStart, SharedParts
from process_apis.worker_sync.api import worker_sync_router
from process_apis.worker_sync.runtime import build_runtime, configure
from process_apis.worker_sync.service import WorkerSyncService
from process_apis.worker_sync.workflow import PROCESS as NAME

__all__ = ["PROCESS"]


def _configure(parts: SharedParts) -> None:
    configure(build_runtime(parts))


async def _scheduled_sync(service: WorkerSyncService, fire: Fire) -> Run:
    """A scheduled sync is a client's start: joins a sync already running, and a fire replayed finds its run."""
    run, _ = await service.start(fire.params.get("mode", "changes") == "full", idempotency_key=fire.idempotency_key)
    return run


PROCESS: ProcessPackage[WorkerSyncService] = ProcessPackage(
    name=NAME, service=lambda _options: WorkerSyncService(), router=worker_sync_router, configure=_configure,
    replay=WorkerSyncService.replay, resume_unstarted=WorkerSyncService.resume_unstarted,
    schedulable={"sync": ScheduledStart(_scheduled_sync, optional={"mode": ("changes", "full")})})
