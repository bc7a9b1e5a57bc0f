"""What the time-to-bill steps need at run time, set once when the app starts (DBOS steps are module-level)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from foundation.retry import RetryPolicy
from process_apis._internal.events import EventOutbox
from process_apis._internal.exceptions import ExceptionStore
from process_apis._internal.runs import RunStore
from process_apis._internal.system_clients import ErpApi, HrApi, PsaApi, TimeApi
from process_apis.time_to_bill.ledger import Ledger

__all__ = ["Runtime", "configure", "runtime"]


@dataclass(frozen=True)
class Runtime:
    runs: RunStore
    exceptions: ExceptionStore
    outbox: EventOutbox
    ledger: Ledger
    time: TimeApi
    erp: ErpApi
    psa: PsaApi
    hr: HrApi
    retry: RetryPolicy
    page_size: int = 2000
    batch_size: int = 1000
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)


_runtime: Runtime | None = None


def configure(rt: Runtime) -> None:
    global _runtime
    _runtime = rt


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("time-to-bill runtime not configured; the app's startup configures it")
    return _runtime
