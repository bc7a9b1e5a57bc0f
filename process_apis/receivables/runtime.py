"""What the receivables steps need at run time, set once at assembly (see `process_apis._internal.slots`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from foundation.retry import RetryPolicy
from process_apis._internal.exceptions import ExceptionStore
from process_apis._internal.runs import RunStore
from process_apis._internal.slots import RuntimeSlot
from process_apis._internal.system_clients import ErpApi
from process_apis.receivables.state import ReceivablesState
from process_apis.registry import SharedParts

__all__ = ["Runtime", "build_runtime", "configure", "runtime"]


@dataclass(frozen=True)
class Runtime:
    runs: RunStore
    exceptions: ExceptionStore
    state: ReceivablesState
    erp: ErpApi
    retry: RetryPolicy
    page_size: int = 200
    """Invoices per ERP page; each page is recorded in its own transaction."""
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)


def build_runtime(parts: SharedParts, *, page_size: int = 200,
                  sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> Runtime:
    engine = parts.engine
    return Runtime(runs=RunStore(engine), exceptions=ExceptionStore(engine), state=ReceivablesState(engine),
                   erp=ErpApi(parts.http, parts.token), retry=parts.retry, page_size=page_size, sleep=sleep)


_slot: RuntimeSlot[Runtime] = RuntimeSlot("receivables")
configure = _slot.set
runtime = _slot.get
