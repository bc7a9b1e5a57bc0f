"""The worker-sync process as the gateway hosts it (entry point `psconnect.processes: worker_sync`)."""

from __future__ import annotations

from process_apis.registry import ProcessPackage, SharedParts
from process_apis.worker_sync.api import worker_sync_router
from process_apis.worker_sync.runtime import build_runtime, configure
from process_apis.worker_sync.service import WorkerSyncService
from process_apis.worker_sync.workflow import PROCESS as NAME

__all__ = ["PROCESS"]


def _configure(parts: SharedParts) -> None:
    configure(build_runtime(parts))


PROCESS: ProcessPackage[WorkerSyncService] = ProcessPackage(
    name=NAME, service=lambda _options: WorkerSyncService(), router=worker_sync_router, configure=_configure,
    replay=WorkerSyncService.replay, resume_unstarted=WorkerSyncService.resume_unstarted)
