"""Which vendors are installed, and which one backs a domain.

Each vendor package declares itself in its ``__init__.py`` (``VENDOR = VendorPackage(...)``)
and is listed in the ``psconnect.vendors`` entry-point group (``pyproject.toml``); a firm's own
distribution can add a vendor the same way, without a change here or in the gateway.

``resolve(domain, legal_entity)`` is the one place a vendor is chosen for a domain: with the
connections file (`system_apis/connections.py`) the vendor of the connection that serves the
entity; without one the single installed vendor of the domain, or the one ``PSCONNECT_VENDORS``
names (``{"erp": "netsuite"}``) — a domain with two vendors and no choice is then a start-up error.

A declaration names its simulator by dotted path (``"package.module:Class"``), loaded
only by `load_simulator`: production code never imports a simulator.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import sqlalchemy as sa
from litestar import Router
from litestar.types import ASGIApp

from foundation.retry import RetryPolicy
from system_apis._internal.faults import Simulated
from system_apis.pacing import VendorBudget

if TYPE_CHECKING:
    from system_apis.connections import Connections

__all__ = [
    "ENTRY_POINT_GROUP",
    "Connection",
    "InvoicesChangedSink",
    "RouterFactory",
    "Simulator",
    "SystemsFactory",
    "VendorConfigurationError",
    "VendorPackage",
    "WebhookSinks",
    "WebhooksFactory",
    "WonDealSink",
    "domains",
    "installed",
    "load_simulator",
    "register",
    "resolve",
    "systems_of",
]

ENTRY_POINT_GROUP = "psconnect.vendors"


class Simulator(Simulated, Protocol):
    """A vendor's stand-in: an ASGI app plus the control surface the tests drive."""

    @property
    def app(self) -> ASGIApp: ...


class RouterFactory(Protocol):
    """``create_router`` of a vendor's api module: the domain router on a client reaching the vendor."""

    def __call__(self, http: httpx.AsyncClient, *, token: str = ..., retry: RetryPolicy | None = ...) -> Router: ...


@dataclass(frozen=True)
class Connection:
    """One account at a vendor: an entry of the connections file, its secrets already resolved.

    A connection serves some domains for some legal entities; its ``name`` is what ids of
    objects that arrive before their legal entity is known carry to name their source.
    """

    name: str
    vendor: str
    base_url: str
    tenant: str | None = None
    """The vendor's company / tenant / subsidiary / realm id for this account, when it has one."""
    identity_url: str | None = None
    """An OAuth vendor's identity server (scheme://host[:port]) where not the vendor's own (None: its own)."""
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Resolved at start-up from environment variables or secret files; never logged, never in the file."""
    pacing: bool | VendorBudget = True
    """The client-side request budget: True = the vendor's published one, False = unpaced, or this budget."""

    def credential(self, key: str, default: str) -> str:
        """One resolved secret, or `default` (a simulator accepts any token)."""
        return self.credentials.get(key) or default

    def filled(self, credentials: Mapping[str, str], *, tenant: str | None = None) -> Connection:
        """This connection with what its entry leaves out: `credentials` under its own, `tenant` if it names none
        (a vendor's `simulated_connection`: what its simulator accepts)."""
        return replace(self, tenant=self.tenant or tenant, credentials={**credentials, **self.credentials})

    def budget(self, published: VendorBudget | None) -> VendorBudget | None:
        """The budget the vendor's client paces itself to on this connection (None: unpaced)."""
        if self.pacing is True:
            return published
        return None if self.pacing is False else self.pacing


class SystemsFactory(Protocol):
    """``create_systems`` of a vendor's api module: one adapter per domain it serves, on one connection.

    Each adapter implements its domain's Protocol (``ErpSystem``, ``CrmSystem`` ... in
    ``system_apis/domains/<domain>.py``); ``http`` reaches the vendor (real or simulator) at
    ``connection.base_url``. A vendor that keeps state of its own on our side (Xero: rotated refresh
    tokens, summarised-line compositions) also takes ``engine``; `systems_of` passes the gateway's
    database there, so that state outlives a restart.
    """

    def __call__(self, http: httpx.AsyncClient, connection: Connection, *,
                 retry: RetryPolicy | None = ...) -> Mapping[str, object]: ...


WonDealSink = Callable[[str, str], Awaitable[None]]
"""Starts provisioning for a won deal: (the deal's id at its CRM account, a key unique to the event)."""

InvoicesChangedSink = Callable[[str], Awaitable[None]]
"""Starts reading invoice status and payments back from the ERPs (a read-back already running is joined, and one
more follows it): (a key unique to the event; the same key again starts nothing new)."""


@dataclass(frozen=True)
class WebhookSinks:
    """What a vendor's verified events are handed to; each vendor package uses the ones its events carry."""

    won_deal: WonDealSink
    invoices_changed: InvoicesChangedSink


class WebhooksFactory(Protocol):
    """``create_webhooks`` of a vendor package: the route the vendor's signed event deliveries reach on one
    connection, or None when the connection names no webhook secret.

    The host mounts it at ``/webhooks/{connection.name}`` outside the policy chain (the vendor signs its
    deliveries; it holds no token of ours); ``public_base_url`` is the scheme and host the vendor calls.
    """

    def __call__(self, connection: Connection, engine: sa.Engine, sinks: WebhookSinks, *,
                 public_base_url: str | None) -> Router | None: ...


class VendorConfigurationError(RuntimeError):
    """The installed vendors and the settings do not name exactly one vendor for a domain."""


@dataclass(frozen=True)
class VendorPackage:
    """A vendor package's declaration.

    ``name`` keys the vendor's settings: its URL in ``PSCONNECT_VENDOR_URLS`` and its API token
    in ``PSCONNECT_VENDOR_TOKENS`` (without a URL it runs in-process as its simulator).
    """

    name: str
    domains: tuple[str, ...]
    """The domain contracts (``system_apis/domains/<domain>.py``) the vendor's router implements."""
    base_url: str
    """Where the real vendor is; the in-process simulator is reached under the same URL."""
    create_router: RouterFactory
    simulator: str | Callable[..., Simulator]
    """``"module:Class"``, imported only when a simulator is wanted; a callable in tests and benchmarks."""
    order: int = 100
    """Sort key: the order of routers and of the ports `psconnect simulators` gives out."""
    default_token: str = field(default="sim-token")
    """The token when ``PSCONNECT_VENDOR_TOKENS`` names none (simulators accept any token)."""
    create_systems: SystemsFactory | None = None
    """The domain adapters on one connection: how routing per legal entity reaches this vendor."""
    create_webhooks: WebhooksFactory | None = None
    """Inbound: the vendor's signed event deliveries that start a process (a CRM's won deals)."""
    simulated_connection: Callable[[Connection, tuple[str, ...]], Connection] | None = None
    """Embedded mode only: the connection an in-process simulator serving these legal entities answers to,
    from the file's entry (test credentials and the tenant the file leaves out; what the file names stays)."""


_registered: dict[str, VendorPackage] | None = None


def _discover() -> dict[str, VendorPackage]:
    found: dict[str, VendorPackage] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        package = ep.load()
        if not isinstance(package, VendorPackage):
            raise VendorConfigurationError(
                f"entry point {ep.name} = {ep.value} in {ENTRY_POINT_GROUP} is not a VendorPackage")
        if package.name in found:
            raise VendorConfigurationError(f"two packages declare the vendor {package.name!r}")
        found[package.name] = package
    return found


def installed() -> tuple[VendorPackage, ...]:
    """Every installed vendor (entry points, read once per process), in declaration order."""
    global _registered
    if _registered is None:
        _registered = _discover()
    return tuple(sorted(_registered.values(), key=lambda p: (p.order, p.name)))


def register(package: VendorPackage) -> None:
    """Add a vendor in this process, or replace the one of the same name (tests, benchmarks, embedding)."""
    installed()
    assert _registered is not None
    _registered[package.name] = package


def domains(packages: Iterable[VendorPackage] | None = None) -> tuple[str, ...]:
    """The domains some installed vendor implements, in vendor order."""
    out: dict[str, None] = {}
    for package in installed() if packages is None else packages:
        out.update(dict.fromkeys(package.domains))
    return tuple(out)


def resolve(domain: str, legal_entity: str | None, *, choice: Mapping[str, str] | None = None,
            connections: Connections | None = None) -> VendorPackage:
    """The vendor that serves ``domain`` for ``legal_entity``.

    With ``connections`` (the connections file, `system_apis/connections.py`) it is the vendor of the
    connection the file names for the entity (the ``default`` entry's for an entity not named, or
    for None). Without, the one installed vendor of the domain: ``choice`` is
    ``Settings.vendor_choice`` (``PSCONNECT_VENDORS``, ``{domain: vendor}``); it must name an
    installed vendor of the domain, and is required when the domain has several.
    """
    if connections is not None:
        return connections.connection_for(domain, legal_entity).package
    candidates = [p for p in installed() if domain in p.domains]
    chosen = (choice or {}).get(domain)
    if chosen is not None:
        for package in candidates:
            if package.name == chosen:
                return package
        raise VendorConfigurationError(
            f"PSCONNECT_VENDORS names {chosen!r} for the {domain} domain, but the installed {domain} vendors are "
            f"{_names(candidates)}")
    if not candidates:
        raise VendorConfigurationError(f"no installed vendor implements the {domain} domain")
    if len(candidates) > 1:
        raise VendorConfigurationError(
            f"the {domain} domain has several installed vendors ({_names(candidates)}); choose one with "
            f'PSCONNECT_VENDORS=\'{{"{domain}": "{candidates[0].name}"}}\'')
    return candidates[0]


def load_simulator(package: VendorPackage, *, legal_entities: Iterable[str] | None = None,
                   options: Mapping[str, Any] | None = None, firm: object | None = None) -> Simulator:
    """A new simulator of the vendor, its module imported only now.

    ``legal_entities``: the entities whose demo data it seeds, and ``firm``: the demo firm it seeds
    them from (each passed when its constructor takes it, so a test's plain factory still works).
    ``options``: a connection's ``simulator:`` settings, its constructor's keyword arguments; one it
    does not take is a configuration error.
    """
    factory: Any
    if callable(package.simulator):
        factory = package.simulator
    else:
        module_name, _, attribute = package.simulator.partition(":")
        factory = getattr(importlib.import_module(module_name), attribute)
    kwargs = dict(options or {})
    if legal_entities is not None and _takes(factory, "legal_entities"):
        kwargs["legal_entities"] = tuple(legal_entities)
    if firm is not None and _takes(factory, "firm"):
        kwargs["firm"] = firm
    unknown = [k for k in kwargs if not _takes(factory, k)]
    if unknown:
        raise VendorConfigurationError(f"the {package.name} simulator takes no option {unknown[0]!r}")
    simulator: Simulator = factory(**kwargs)
    return simulator


def systems_of(package: VendorPackage, http: httpx.AsyncClient, connection: Connection, *,
               retry: RetryPolicy | None, engine: sa.Engine | None) -> Mapping[str, object]:
    """The adapters of one account (`package.create_systems`), with `engine` for a vendor that takes it."""
    if package.create_systems is None:
        raise VendorConfigurationError(f"connection {connection.name}: the vendor {package.name} offers no "
                                       "create_systems, so it cannot be routed per legal entity")
    extra = {"engine": engine} if engine is not None and _takes(package.create_systems, "engine") else {}
    return package.create_systems(http, connection, retry=retry, **extra)


def _takes(factory: Callable[..., object], name: str) -> bool:
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return True
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _names(packages: Iterable[VendorPackage]) -> str:
    return ", ".join(p.name for p in packages) or "none"
