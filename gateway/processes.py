"""The process APIs the gateway hosts: whatever the `psconnect.processes` entry points list.

Services and routers exist before the app (the routes need them); runtimes are
configured once the gateway's internal client exists, because every process reaches
the system APIs through the gateway with the service identity's token. No process is
named here: each package declares itself (`process_apis.registry.ProcessPackage`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import sqlalchemy as sa
from litestar import Router

from contracts.runs import Run
from foundation.retry import RetryPolicy
from process_apis.exception_queue import Replayer, register_replayer
from process_apis.exchange_rates import RateTable
from process_apis.registry import HostOptions, ProcessPackage, SharedParts, TokenSource, discover
from system_apis.demo_firm import ANCHOR_DATE

__all__ = ["DEFAULT_PACE", "HostedProcess", "Processes"]

DEFAULT_PACE = RetryPolicy(max_attempts=8, base_delay=0.5, max_delay=30.0)
"""How process steps retry a system API when the gateway is given no policy."""


@dataclass(frozen=True)
class HostedProcess:
    package: ProcessPackage[Any]
    service: Any


@dataclass
class Processes:
    hosted: dict[str, HostedProcess]

    @classmethod
    def create(cls, *, demo_calendar: bool, packages: list[ProcessPackage[Any]] | None = None) -> Processes:
        """`demo_calendar`: judge "future-dated" against the demo firm's today, not the wall clock."""
        options = HostOptions(as_of=ANCHOR_DATE if demo_calendar else None)
        return cls(hosted={p.name: HostedProcess(p, p.service(options)) for p in packages or discover()})

    def service(self, name: str) -> Any:
        """The service of one hosted process (tests and the command line reach a process through it)."""
        return self.hosted[name].service

    def routers(self) -> list[Router]:
        return [h.package.router(h.service) for h in self.hosted.values()]

    def configure(self, engine: sa.Engine, http: httpx.AsyncClient, token: TokenSource,
                  retry: RetryPolicy | None, rate_table: RateTable | None = None,
                  transfer_markup: Callable[[str, str], Decimal] | None = None) -> None:
        parts = SharedParts(engine=engine, http=http, token=token, retry=retry or DEFAULT_PACE, rate_table=rate_table,
                            transfer_markup=transfer_markup)
        for name, h in self.hosted.items():
            h.package.configure(parts)
            register_replayer(name, _replayer(h))

    async def resume(self) -> int:
        """Hand runs recorded but never started (a crash between two writes) to DBOS."""
        return sum([await h.package.resume_unstarted(h.service) for h in self.hosted.values()])


def _replayer(hosted: HostedProcess) -> Replayer:
    async def replay(exception_id: str) -> Run:
        return await hosted.package.replay(hosted.service, exception_id)
    return replay
