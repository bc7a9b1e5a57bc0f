"""The time-to-bill process as the gateway hosts it (entry point `psconnect.processes: time_to_bill`)."""

from __future__ import annotations

from process_apis.registry import HostOptions, ProcessPackage, SharedParts
from process_apis.time_to_bill.api import time_to_bill_router
from process_apis.time_to_bill.runtime import build_runtime, configure
from process_apis.time_to_bill.service import TimeToBillService
from process_apis.time_to_bill.workflow import PROCESS as NAME

__all__ = ["PROCESS"]


def _service(options: HostOptions) -> TimeToBillService:
    return TimeToBillService(as_of=options.as_of)


def _configure(parts: SharedParts) -> None:
    configure(build_runtime(parts))


PROCESS: ProcessPackage[TimeToBillService] = ProcessPackage(
    name=NAME, service=_service, router=time_to_bill_router, configure=_configure,
    replay=TimeToBillService.replay_run, resume_unstarted=TimeToBillService.resume_unstarted)
