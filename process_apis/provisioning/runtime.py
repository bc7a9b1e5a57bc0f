"""What the provisioning steps need at run time, set once at assembly (see `process_apis._internal.slots`)."""

from __future__ import annotations

from dataclasses import dataclass

from foundation.retry import RetryPolicy
from process_apis._internal.events import EventOutbox
from process_apis._internal.exceptions import ExceptionStore
from process_apis._internal.runs import RunStore
from process_apis._internal.slots import RuntimeSlot
from process_apis._internal.system_clients import CrmApi, ErpApi, PsaApi
from process_apis.registry import SharedParts

__all__ = ["Runtime", "build_runtime", "configure", "runtime"]


@dataclass(frozen=True)
class Runtime:
    runs: RunStore
    exceptions: ExceptionStore
    outbox: EventOutbox
    crm: CrmApi
    erp: ErpApi
    psa: PsaApi
    retry: RetryPolicy


_slot: RuntimeSlot[Runtime] = RuntimeSlot("provisioning")
configure = _slot.set
runtime = _slot.get


def build_runtime(parts: SharedParts) -> Runtime:
    engine, http, token = parts.engine, parts.http, parts.token
    return Runtime(runs=RunStore(engine), exceptions=ExceptionStore(engine), outbox=EventOutbox(engine),
                   crm=CrmApi(http, token), erp=ErpApi(http, token), psa=PsaApi(http, token), retry=parts.retry)
