"""Which vendor account backs each domain for each legal entity, and where its requests go.

The connections file (`system_apis/connections.py`; `PSCONNECT_CONNECTIONS`, else the shipped
`system_apis/connections.yaml`) names the accounts; each gets one client here and, through its
vendor's `create_systems`, one adapter per domain. Each domain router wraps a routed adapter
(`system_apis/routing.py`) that hands every call to the account of its legal entity.

Embedded mode runs each account as its own simulator in-process (its module imported only
then), told which legal entities it serves so it seeds only their demo data, and points the
account's client at it through `httpx.ASGITransport` — the same client code as against the real
vendor, only the transport differs. An account named (by connection, else vendor) in
`PSCONNECT_VENDOR_URLS`, or declared `simulated: false`, is reached over HTTP instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from litestar import Router

from foundation.http_client import CycleFreeClient
from foundation.retry import RetryPolicy
from gateway.settings import Settings
from system_apis.connections import ConnectionEntry, Connections, ConnectionsError, load_connections
from system_apis.demo_firm import demo_firm, with_worker_ids
from system_apis.domains.crm import crm_router
from system_apis.domains.erp import erp_router
from system_apis.domains.hr import hr_router
from system_apis.domains.psa import psa_router
from system_apis.domains.time import time_router
from system_apis.pacing import set_service_consumers
from system_apis.registry import (
    Simulator,
    VendorConfigurationError,
    VendorPackage,
    domains,
    load_simulator,
    resolve,
    systems_of,
)
from system_apis.routing import SEPARATOR, routed_systems

__all__ = ["ConnectionRuntime", "Simulator", "VendorRuntime", "build_vendors", "load_settings_connections",
           "simulated_accounts"]

VENDOR_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
_ROUTERS: Mapping[str, Callable[..., Router]] = {
    "crm": crm_router, "erp": erp_router, "psa": psa_router, "time": time_router, "hr": hr_router}


@dataclass
class ConnectionRuntime:
    """One vendor account: its client and, in embedded mode, its simulator."""

    entry: ConnectionEntry
    client: httpx.AsyncClient
    simulator: Simulator | None
    legal_entities: tuple[str, ...]
    """The demo firm's entities this account serves (what its simulator seeds)."""


@dataclass
class VendorRuntime:
    """One domain: its router over every account of the domain; `spec`, `client` and `simulator` are the
    default account's (the one serving every entity the connections file does not name)."""

    spec: VendorPackage
    client: httpx.AsyncClient
    router: Router
    simulator: Simulator | None = field(default=None)
    domain: str = ""
    connections: dict[str, ConnectionRuntime] = field(default_factory=dict)
    """Every account of the domain by connection name, the default's first."""
    routing: Connections | None = None

    def backing(self) -> tuple[str, ...]:
        """Which vendor account serves which entities, one line per account (the portal catalog shows it)."""
        assert self.routing is not None
        out = []
        for name, runtime in self.connections.items():
            entities = [e for e, r in self.routing.routes.items() if r.get(self.domain) == name]
            shown = ", ".join("every other entity" if e == "default" else e for e in entities)
            out.append(f"{runtime.entry.package.name} ({name}): {shown}")
        return tuple(out)

    def for_entity(self, legal_entity: str | None) -> ConnectionRuntime:
        """The account serving this domain for `legal_entity`."""
        assert self.routing is not None
        return self.connections[self.routing.connection_for(self.domain, legal_entity).connection.name]


def load_settings_connections(settings: Settings) -> Connections:
    """The connections file the settings name, with `PSCONNECT_VENDORS` applied to its default entry."""
    connections = load_connections(Path(settings.connections_file) if settings.connections_file else None)
    served = domains()
    unknown = sorted(set(settings.vendor_choice) - set(served))
    if unknown:
        raise VendorConfigurationError(f"PSCONNECT_VENDORS names domains no installed vendor implements: {unknown}")
    chosen = {d: resolve(d, None, choice=settings.vendor_choice) for d in settings.vendor_choice}
    return connections.with_default_vendors(chosen)


def build_vendors(settings: Settings, *, retry: RetryPolicy | None = None, connections: Connections | None = None,
                  engine: sa.Engine | None = None) -> dict[str, VendorRuntime]:
    """One routed router per domain over one client per account; simulators in-process unless a URL is set.
    `engine` (the gateway's database) keeps what the adapter of a vendor reached over HTTP must not lose in a
    restart (Xero's rotated refresh token).

    Fails with `ConnectionsError` (a bad connections file, named with its entity and field) or
    `VendorConfigurationError` (`PSCONNECT_VENDORS` naming what is not installed).
    """
    set_service_consumers(frozenset({settings.service_client_id}))  # its own share of each vendor's budget
    connections = connections or load_settings_connections(settings)
    known = tuple(e.code for e in demo_firm().legal_entities)
    built = {name: _runtime(entry, settings, connections, known) for name, entry in _accounts(connections).items()}
    out: dict[str, VendorRuntime] = {}
    for domain in (d for d in domains() if d in connections.routes["default"]):
        runtimes = {e.connection.name: built[e.connection.name] for e in connections.for_domain(domain)}
        # an in-process simulator's state lasts as long as the process: so does what its adapter keeps about it
        adapters = {name: _adapter(rt, domain, retry, engine if rt.simulator is None else None)
                    for name, rt in runtimes.items()}
        router = _ROUTERS[domain](routed_systems(domain, connections, adapters))
        default = next(iter(runtimes.values()))
        out[domain] = VendorRuntime(spec=default.entry.package, client=default.client, router=router,
                                    simulator=default.simulator, domain=domain, connections=runtimes,
                                    routing=connections)
    return out


def simulated_accounts(connections: Connections) -> dict[str, Simulator]:
    """Every account of the connections file as its own simulator, seeded as embedded mode seeds it: what
    `psconnect simulators --connections` serves, so a gateway reaching them over HTTP meets the same data."""
    known = tuple(e.code for e in demo_firm().legal_entities)
    return {name: _simulator(entry, connections, known) for name, entry in _accounts(connections).items()}


def _accounts(connections: Connections) -> dict[str, ConnectionEntry]:
    """Every account that serves a domain of the file, by connection name, the default's first."""
    return {e.connection.name: e for d in domains() if d in connections.routes["default"]
            for e in connections.for_domain(d)}


def _simulator(entry: ConnectionEntry, connections: Connections, known: tuple[str, ...]) -> Simulator:
    """The account's simulator, seeded with the entities it serves (workers by their routed ids); an option its
    constructor does not take is an error of the connections file."""
    name = entry.connection.name
    worker_ids = _worker_ids(connections, entry, known)
    try:
        return load_simulator(entry.package, legal_entities=connections.entities_of(name, known),
                              options=entry.simulator,
                              firm=with_worker_ids(demo_firm(), worker_ids) if worker_ids else None)
    except VendorConfigurationError as exc:
        raise ConnectionsError(f"{connections.source}: connections.{name}.simulator: {exc}") from exc


def _adapter(runtime: ConnectionRuntime, domain: str, retry: RetryPolicy | None, engine: sa.Engine | None) -> object:
    package = runtime.entry.package
    try:
        systems = systems_of(package, runtime.client, runtime.entry.connection, retry=retry, engine=engine)
    except VendorConfigurationError as exc:
        raise ConnectionsError(str(exc)) from exc
    if domain not in systems:
        raise ConnectionsError(f"connection {runtime.entry.connection.name}: {package.name}'s create_systems "
                               f"built no {domain} adapter")
    return systems[domain]


def _worker_ids(connections: Connections, entry: ConnectionEntry, known: tuple[str, ...]) -> dict[str, str]:
    """Demo data only: the workers a PSA or ERP account's simulator must know by routed id (`ca01-hr:W-…`),
    those of its entities whose HR account is not the default one — as worker sync would have keyed them."""
    if not {"psa", "erp"} & set(entry.package.domains) or "hr" in entry.package.domains:
        return {}
    default_hr = connections.default_for("hr").connection.name
    served = connections.entities_of(entry.connection.name, known)
    hr_of = {e: connections.connection_for("hr", e).connection.name for e in served}
    return {w.id: f"{hr_of[w.legal_entity_code]}{SEPARATOR}{w.id}" for w in demo_firm().workers
            if w.legal_entity_code in hr_of and hr_of[w.legal_entity_code] != default_hr}


def _runtime(entry: ConnectionEntry, settings: Settings, connections: Connections,
             known: tuple[str, ...]) -> ConnectionRuntime:
    connection, package = entry.connection, entry.package
    entities = connections.entities_of(connection.name, known)
    url = settings.vendor_urls.get(connection.name) or (
        settings.vendor_urls.get(package.name) if connection.name == package.name else None)
    token = settings.vendor_tokens.get(connection.name) or settings.vendor_tokens.get(package.name)
    connection = connection.filled({"token": token or package.default_token})  # the file's own token first
    if url:  # a stand-in (or the vendor elsewhere) serves the account's API paths and its identity endpoint
        connection = replace(connection, base_url=url.rstrip("/") + urlsplit(connection.base_url).path,
                             identity_url=connection.identity_url or url.rstrip("/"))
    simulated = not url and entry.simulated
    if simulated and package.simulated_connection is not None:
        connection = package.simulated_connection(connection, entities)
    entry = ConnectionEntry(connection=connection, package=package, simulated=entry.simulated,
                            simulator=entry.simulator)
    simulator: Simulator | None = None
    if not simulated:
        client = CycleFreeClient(base_url=url or connection.base_url, timeout=VENDOR_TIMEOUT,
                                 limits=httpx.Limits(max_connections=50, max_keepalive_connections=20))
    else:
        simulator = _simulator(entry, connections, known)
        transport = httpx.ASGITransport(app=simulator.app)  # type: ignore[arg-type]
        client = CycleFreeClient(transport=transport, base_url=connection.base_url, timeout=VENDOR_TIMEOUT)
    return ConnectionRuntime(entry=entry, client=client, simulator=simulator, legal_entities=entities)
