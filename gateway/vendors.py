"""Which vendor backs each domain, and where its requests go.

The vendors are the installed vendor packages (`system_apis.registry`); `resolve` picks one
per domain. Embedded mode runs the vendor's simulator in-process (its module imported only
then) and points the vendor client at it through `httpx.ASGITransport` — the same client
code as against the real vendor, only the transport differs. A vendor named in
`PSCONNECT_VENDOR_URLS` is reached over HTTP instead (a simulator process, or the vendor itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from litestar import Router

from foundation.retry import RetryPolicy
from gateway.settings import Settings
from system_apis.pacing import set_service_consumers
from system_apis.registry import (
    Simulator,
    VendorConfigurationError,
    VendorPackage,
    domains,
    load_simulator,
    resolve,
)

__all__ = ["Simulator", "VendorRuntime", "build_vendors"]

VENDOR_TIMEOUT = httpx.Timeout(10.0, connect=3.0)


@dataclass
class VendorRuntime:
    spec: VendorPackage
    client: httpx.AsyncClient
    router: Router
    simulator: Simulator | None = field(default=None)


def build_vendors(settings: Settings, *, retry: RetryPolicy | None = None) -> dict[str, VendorRuntime]:
    """One client and router per domain; simulators in-process unless a URL is configured.

    Fails (`VendorConfigurationError`) when a domain has several vendors and `PSCONNECT_VENDORS`
    chooses none, or the choice names a domain or vendor that is not installed.
    """
    set_service_consumers(frozenset({settings.service_client_id}))  # its own share of each vendor's budget
    served = domains()
    unknown = sorted(set(settings.vendor_choice) - set(served))
    if unknown:
        raise VendorConfigurationError(f"PSCONNECT_VENDORS names domains no installed vendor implements: {unknown}")
    out: dict[str, VendorRuntime] = {}
    built: dict[str, VendorRuntime] = {}
    for domain in served:
        package = resolve(domain, None, choice=settings.vendor_choice)
        if package.name not in built:
            built[package.name] = _runtime(package, settings, retry)
        out[domain] = built[package.name]
    return out


def _runtime(package: VendorPackage, settings: Settings, retry: RetryPolicy | None) -> VendorRuntime:
    url = settings.vendor_urls.get(package.name)
    simulator: Simulator | None = None
    if url:
        client = httpx.AsyncClient(base_url=url, timeout=VENDOR_TIMEOUT,
                                   limits=httpx.Limits(max_connections=50, max_keepalive_connections=20))
    else:
        simulator = load_simulator(package)
        transport = httpx.ASGITransport(app=simulator.app)  # type: ignore[arg-type]
        client = httpx.AsyncClient(transport=transport, base_url=package.base_url, timeout=VENDOR_TIMEOUT)
    token = settings.vendor_tokens.get(package.name, package.default_token)
    return VendorRuntime(spec=package, client=client, simulator=simulator,
                         router=package.create_router(client, token=token, retry=retry))
