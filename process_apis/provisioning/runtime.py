"""What the provisioning steps need at run time, set once when the app starts.

DBOS workflows and steps are module-level functions (they must be found again by
name after a restart), so their collaborators live in one module-level slot rather
than being passed as arguments that would be pickled into the workflow's inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from foundation.retry import RetryPolicy
from process_apis._internal.events import EventOutbox
from process_apis._internal.exceptions import ExceptionStore
from process_apis._internal.runs import RunStore
from process_apis._internal.system_clients import CrmApi, ErpApi, PsaApi

__all__ = ["Runtime", "configure", "runtime"]


@dataclass(frozen=True)
class Runtime:
    runs: RunStore
    exceptions: ExceptionStore
    outbox: EventOutbox
    crm: CrmApi
    erp: ErpApi
    psa: PsaApi
    retry: RetryPolicy


_runtime: Runtime | None = None


def configure(rt: Runtime) -> None:
    global _runtime
    _runtime = rt


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("provisioning runtime not configured; the app's startup configures it")
    return _runtime
