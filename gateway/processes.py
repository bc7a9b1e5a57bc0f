"""The process APIs the gateway hosts: their services, routes, runtimes and replayers.

Services and routers exist before the app (the routes need them); runtimes are
configured once the gateway's internal client exists, because every process reaches
the system APIs through the gateway with the service identity's token.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import sqlalchemy as sa
from litestar import Router

from contracts.runs import Run
from foundation.retry import RetryPolicy
from process_apis._internal.events import EventOutbox
from process_apis._internal.exceptions import ExceptionStore
from process_apis._internal.replay import register_replayer
from process_apis._internal.runs import RunStore
from process_apis._internal.system_clients import CrmApi, ErpApi, HrApi, PsaApi, TimeApi, TokenSource
from process_apis.provisioning import runtime as provisioning_runtime
from process_apis.provisioning.api import provisioning_router
from process_apis.provisioning.service import ProvisioningService
from process_apis.time_to_bill import runtime as ttb_runtime
from process_apis.time_to_bill.api import time_to_bill_router
from process_apis.time_to_bill.ledger import Ledger
from process_apis.time_to_bill.service import TimeToBillService
from process_apis.worker_sync import runtime as sync_runtime
from process_apis.worker_sync.api import worker_sync_router
from process_apis.worker_sync.service import WorkerSyncService
from system_apis.demo_firm import ANCHOR_DATE

__all__ = ["Processes"]


@dataclass
class Processes:
    provisioning: ProvisioningService
    worker_sync: WorkerSyncService
    time_to_bill: TimeToBillService

    @classmethod
    def create(cls, *, demo_calendar: bool) -> Processes:
        """`demo_calendar`: judge "future-dated" against the demo firm's today, not the wall clock."""
        return cls(provisioning=ProvisioningService(), worker_sync=WorkerSyncService(),
                   time_to_bill=TimeToBillService(as_of=ANCHOR_DATE if demo_calendar else None))

    def routers(self) -> list[Router]:
        return [provisioning_router(self.provisioning), worker_sync_router(self.worker_sync),
                time_to_bill_router(self.time_to_bill)]

    def configure(self, engine: sa.Engine, http: httpx.AsyncClient, token: TokenSource,
                  retry: RetryPolicy | None) -> None:
        pace = retry or RetryPolicy(max_attempts=8, base_delay=0.5, max_delay=30.0)
        runs, exceptions, outbox = RunStore(engine), ExceptionStore(engine), EventOutbox(engine)
        erp, psa = ErpApi(http, token), PsaApi(http, token)
        provisioning_runtime.configure(provisioning_runtime.Runtime(
            runs=runs, exceptions=exceptions, outbox=outbox, crm=CrmApi(http, token), erp=erp, psa=psa, retry=pace))
        sync_runtime.configure(sync_runtime.build_runtime(engine, http, token, retry=pace))
        ttb_runtime.configure(ttb_runtime.Runtime(
            runs=runs, exceptions=exceptions, outbox=outbox, ledger=Ledger(engine), time=TimeApi(http, token),
            erp=erp, psa=psa, hr=HrApi(http, token), retry=pace))
        register_replayer("provisioning", self.provisioning.replay)
        register_replayer("worker_sync", self.worker_sync.replay)
        register_replayer("time_to_bill", self._replay_billing)

    async def resume(self) -> int:
        """Hand runs recorded but never started (a crash between two writes) to DBOS."""
        return (await self.provisioning.resume_unstarted() + await self.worker_sync.resume_unstarted()
                + await self.time_to_bill.resume_unstarted())

    async def _replay_billing(self, exception_id: str) -> Run:
        """Re-validate the held lines and start (or join) the billing runs that will post them."""
        rt = ttb_runtime.runtime()
        record = rt.exceptions.get(exception_id)
        _, runs = await self.time_to_bill.replay_runs(exception_id)
        run = runs[0] if runs else (rt.runs.get(record.run_id) if record else None)
        if run is None:
            raise LookupError(f"billing run of exception {exception_id} not found")
        return run
