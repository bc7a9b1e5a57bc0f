"""What the worker-sync steps need at run time, set once when the app starts.

DBOS workflows and steps are module-level functions (found again by name after a
restart), so their collaborators live in one module-level slot, as in provisioning.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import sqlalchemy as sa

from foundation.retry import RetryPolicy
from process_apis._internal.exceptions import ExceptionStore
from process_apis._internal.runs import RunStore
from process_apis._internal.system_clients import TokenSource
from process_apis.worker_sync.clients import HrApi, WorkforceErpApi, WorkforcePsaApi
from process_apis.worker_sync.state import SyncState

__all__ = ["Runtime", "build_runtime", "configure", "runtime"]


@dataclass(frozen=True)
class Runtime:
    runs: RunStore
    exceptions: ExceptionStore
    state: SyncState
    hr: HrApi
    psa: WorkforcePsaApi
    erp: WorkforceErpApi
    retry: RetryPolicy
    batch_size: int = 100
    """Workers per HR page and per durable step (the HR contract pages by at most 100)."""
    concurrency: int = 8
    """Workers of one batch upserted at once."""
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)


_runtime: Runtime | None = None


def build_runtime(engine: sa.Engine, http: httpx.AsyncClient, token: TokenSource, *,
                  retry: RetryPolicy | None = None, batch_size: int = 100, concurrency: int = 8,
                  sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> Runtime:
    """The runtime the gateway configures: stores on its engine, system APIs through its internal client."""
    return Runtime(runs=RunStore(engine), exceptions=ExceptionStore(engine), state=SyncState(engine),
                   hr=HrApi(http, token), psa=WorkforcePsaApi(http, token), erp=WorkforceErpApi(http, token),
                   retry=retry or RetryPolicy(max_attempts=8, base_delay=0.5, max_delay=30.0),
                   batch_size=batch_size, concurrency=concurrency, sleep=sleep)


def configure(rt: Runtime) -> None:
    global _runtime
    _runtime = rt


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("worker-sync runtime not configured; the app's startup configures it")
    return _runtime
