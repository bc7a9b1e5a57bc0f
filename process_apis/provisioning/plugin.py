"""The provisioning process as the gateway hosts it (entry point `psconnect.processes: provisioning`)."""

from __future__ import annotations

from process_apis.provisioning.api import provisioning_router
from process_apis.provisioning.runtime import build_runtime, configure
from process_apis.provisioning.service import ProvisioningService
from process_apis.provisioning.workflow import PROCESS as NAME
from process_apis.registry import ProcessPackage, SharedParts

__all__ = ["PROCESS"]


def _configure(parts: SharedParts) -> None:
    configure(build_runtime(parts))


PROCESS: ProcessPackage[ProvisioningService] = ProcessPackage(
    name=NAME, service=lambda _options: ProvisioningService(), router=provisioning_router, configure=_configure,
    replay=ProvisioningService.replay, resume_unstarted=ProvisioningService.resume_unstarted)
