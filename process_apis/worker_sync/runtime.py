"""What the worker-sync steps need at run time, set once at assembly (see `process_apis._internal.slots`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from foundation.retry import RetryPolicy
from process_apis._internal.exceptions import ExceptionStore
from process_apis._internal.runs import RunStore
from process_apis._internal.slots import RuntimeSlot
from process_apis._internal.system_clients import ErpApi, HrApi, PsaApi
from process_apis.registry import SharedParts
from process_apis.worker_sync.state import SyncState

__all__ = ["Runtime", "build_runtime", "configure", "runtime"]


@dataclass(frozen=True)
class Runtime:
    runs: RunStore
    exceptions: ExceptionStore
    state: SyncState
    hr: HrApi
    psa: PsaApi
    erp: ErpApi
    retry: RetryPolicy
    batch_size: int = 100
    """Workers per HR page and per durable step (the HR contract pages by at most 100)."""
    concurrency: int = 8
    """Workers of one batch upserted at once."""
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)


def build_runtime(parts: SharedParts, *, batch_size: int = 100, concurrency: int = 8,
                  sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> Runtime:
    """The runtime the gateway configures: stores on its engine, system APIs through its internal client."""
    engine, http, token = parts.engine, parts.http, parts.token
    return Runtime(runs=RunStore(engine), exceptions=ExceptionStore(engine), state=SyncState(engine),
                   hr=HrApi(http, token), psa=PsaApi(http, token), erp=ErpApi(http, token), retry=parts.retry,
                   batch_size=batch_size, concurrency=concurrency, sleep=sleep)


_slot: RuntimeSlot[Runtime] = RuntimeSlot("worker_sync")
configure = _slot.set
runtime = _slot.get
