"""Which vendor backs each domain, and where its requests go.

Embedded mode runs each vendor's simulator in-process and points the vendor client
at it through `httpx.ASGITransport` — the same client code as against the real
vendor, only the transport differs. A vendor named in `PSCONNECT_VENDOR_URLS` is
reached over HTTP instead (a simulator process, or the vendor itself).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import httpx
from litestar import Router
from litestar.types import ASGIApp

from foundation.retry import RetryPolicy
from gateway.settings import Settings
from system_apis._internal.faults import Simulated
from system_apis.harvest import api as harvest_api
from system_apis.harvest import client as harvest_client
from system_apis.harvest.simulator import HarvestSimulator
from system_apis.kantata import api as kantata_api
from system_apis.kantata import client as kantata_client
from system_apis.kantata.simulator import KantataSimulator
from system_apis.netsuite import api as netsuite_api
from system_apis.netsuite import client as netsuite_client
from system_apis.netsuite.simulator import NetSuiteSimulator
from system_apis.salesforce import api as salesforce_api
from system_apis.salesforce import client as salesforce_client
from system_apis.salesforce.simulator import SalesforceSimulator
from system_apis.workday import api as workday_api
from system_apis.workday import client as workday_client
from system_apis.workday.simulator import WorkdaySimulator

__all__ = ["VENDORS", "Simulator", "VendorRuntime", "VendorSpec", "build_vendors"]

VENDOR_TIMEOUT = httpx.Timeout(10.0, connect=3.0)


class Simulator(Simulated, Protocol):
    @property
    def app(self) -> ASGIApp: ...


@dataclass(frozen=True)
class VendorSpec:
    domain: str
    name: str
    base_url: str
    simulator: Callable[[], Simulator]
    router: Callable[..., Router]
    """`create_router(http, *, token, retry)` of the vendor's api module."""


VENDORS: tuple[VendorSpec, ...] = (
    VendorSpec("crm", "salesforce", salesforce_client.BASE_URL, SalesforceSimulator, salesforce_api.create_router),
    VendorSpec("erp", "netsuite", netsuite_client.BASE_URL, NetSuiteSimulator, netsuite_api.create_router),
    VendorSpec("psa", "kantata", kantata_client.BASE_URL, KantataSimulator, kantata_api.create_router),
    VendorSpec("hr", "workday", workday_client.BASE_URL, WorkdaySimulator, workday_api.create_router),
    VendorSpec("time", "harvest", harvest_client.BASE_URL, HarvestSimulator, harvest_api.create_router),
)


@dataclass
class VendorRuntime:
    spec: VendorSpec
    client: httpx.AsyncClient
    router: Router
    simulator: Simulator | None = field(default=None)


def build_vendors(settings: Settings, *, retry: RetryPolicy | None = None) -> dict[str, VendorRuntime]:
    """One client and router per domain; simulators in-process unless a URL is configured."""
    out: dict[str, VendorRuntime] = {}
    for spec in VENDORS:
        url = settings.vendor_urls.get(spec.name)
        simulator: Simulator | None = None
        if url:
            client = httpx.AsyncClient(base_url=url, timeout=VENDOR_TIMEOUT,
                                       limits=httpx.Limits(max_connections=50, max_keepalive_connections=20))
        else:
            simulator = spec.simulator()
            transport = httpx.ASGITransport(app=simulator.app)  # type: ignore[arg-type]
            client = httpx.AsyncClient(transport=transport, base_url=spec.base_url,
                                       timeout=VENDOR_TIMEOUT)
        token = settings.vendor_tokens.get(spec.name, "sim-token")
        out[spec.domain] = VendorRuntime(spec=spec, client=client, simulator=simulator,
                                         router=spec.router(client, token=token, retry=retry))
    return out
