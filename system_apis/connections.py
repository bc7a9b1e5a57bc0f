"""The connections file: which vendor account serves each domain for each legal entity.

A firm that buys a company keeps the acquired company's CRM, HR and ERP for years, so the
vendor of a domain is chosen per legal entity, declaratively, in one versioned file
(``system_apis/connections.yaml`` by default, another one named by ``PSCONNECT_CONNECTIONS``)::

    format: 1
    connections:
      netsuite:                       # a connection's name: what routed ids carry (`<name>:<vendor id>`)
        vendor: netsuite              # an installed vendor package (psconnect.vendors)
        base_url: https://…           # default: the vendor's own base URL
        tenant: "1234567"             # company / tenant / subsidiary / realm id, when the vendor has one
        identity_url: https://…       # an OAuth vendor's identity server (scheme://host), when not its own
        credentials:                  # where each secret comes from: never the secret itself
          token: {env: NETSUITE_TOKEN}        # or {file: /run/secrets/netsuite-token}
        simulated: true               # embedded: its own in-process simulator (false: reach base_url)
        pacing: {requests: 100, seconds: 15}  # client-side budget; `false` = unpaced; absent = the vendor's
    entities:
      default: {crm: salesforce, erp: netsuite, psa: kantata, time: harvest, hr: workday}
      CA01: {erp: netsuite-ca}        # domains not named fall back to `default`
    intercompany:                     # transfer pricing of consultants staffed on another entity's project
      markup_percent: "10"            # on the consultant's HR cost rate, unless the pair says otherwise
      pairs: {UK01>US01: {markup_percent: "12.5"}}   # employer>project entity

Read once at start-up (`load_connections`); a bad file stops start-up with one line naming the
file, the entity or connection and the field (`ConnectionsError`), never a traceback. Secrets
are resolved then too, so a missing environment variable or secret file is a start-up error,
not a failed month-end run. Routing (`system_apis/routing.py`) asks `connection_for(domain,
entity)`; lists without an entity are read from every connection of the domain.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import msgspec
from msgspec import Meta

from contracts.common import ENTITY_CODE
from system_apis.pacing import VendorBudget
from system_apis.registry import Connection, VendorPackage, installed

__all__ = [
    "CONNECTIONS_ENV",
    "DEFAULT_ENTITY",
    "DEFAULT_FILE",
    "DOMAINS",
    "FORMAT_VERSION",
    "Connections",
    "ConnectionsError",
    "Intercompany",
    "Pacing",
    "TransferRate",
    "load_connections",
    "load_intercompany",
    "parse_connections",
]

DEFAULT_FILE = Path(__file__).with_name("connections.yaml")
CONNECTIONS_ENV = "PSCONNECT_CONNECTIONS"
"""Environment variable naming another connections file (a deployment's own accounts)."""
FORMAT_VERSION = 1
DEFAULT_ENTITY = "default"
DOMAINS = ("crm", "psa", "time", "hr", "erp")
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"
"""Connection names: lower case, no `:` — a routed id is `<connection>:<vendor id>`."""
ENTITY_PATTERN = f"^(default|{ENTITY_CODE})$"

Domain = Literal["crm", "psa", "time", "hr", "erp"]
S = TypeVar("S")


class ConnectionsError(RuntimeError):
    """The connections file cannot be used: the message names the file, the entry and the field."""


class SecretRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where a secret comes from: an environment variable's name or a secret file's path (one of the two)."""

    env: Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    file: str | None = None

    def __post_init__(self) -> None:
        if (self.env is None) == (self.file is None):
            raise ValueError("name exactly one of `env` or `file`")


class Pacing(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A client-side request budget: at most `requests` per `seconds` on this connection."""

    requests: Annotated[int, Meta(ge=1)]
    seconds: Annotated[float, Meta(gt=0)]


class ConnectionSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    vendor: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]*$")]
    base_url: Annotated[str, Meta(pattern=r"^https?://")] | None = None
    tenant: Annotated[str, Meta(min_length=1, max_length=120)] | None = None
    identity_url: Annotated[str, Meta(pattern=r"^https?://[^/]+$")] | None = None
    """An OAuth vendor's identity server (scheme://host[:port]) where not the vendor's own; the token path
    stays the vendor's."""
    credentials: dict[Annotated[str, Meta(pattern=r"^[a-z_]+$")], object] = {}
    """Each value a `SecretRef`, converted one by one so an error names its key."""
    simulated: bool = True
    pacing: Pacing | bool = True
    """true: the vendor's published budget; false: unpaced (a test stack's unlimited simulator); or a budget."""
    simulator: dict[str, int | float | bool | str | None] = {}
    """Embedded mode only: keyword arguments of the connection's simulator (e.g. its rate limit off)."""


class EntitySpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    crm: str | None = None
    psa: str | None = None
    time: str | None = None
    hr: str | None = None
    erp: str | None = None


Percent = Annotated[Decimal, Meta(description="A percentage, as text (\"12.5\"): 0 to 1000.")]


class TransferRate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    markup_percent: Percent
    """Added to the consultant's HR cost rate: the hourly transfer rate the employer charges."""

    def __post_init__(self) -> None:
        _check_percent(self.markup_percent)


class Intercompany(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The transfer pricing of the file's `intercompany:` entry (default: cost plus nothing)."""

    markup_percent: Percent = Decimal(0)
    pairs: dict[Annotated[str, Meta(pattern=f"^{ENTITY_CODE}>{ENTITY_CODE}$")], TransferRate] = {}
    """`employer>project entity` -> its own rate, where it differs from the default."""

    def __post_init__(self) -> None:
        _check_percent(self.markup_percent)

    def markup(self, employer: str, project_entity: str) -> Decimal:
        pair = self.pairs.get(f"{employer}>{project_entity}")
        return pair.markup_percent if pair is not None else self.markup_percent


class _File(msgspec.Struct, frozen=True):
    format: int
    connections: dict[str, object]
    entities: dict[str, object]
    intercompany: object = None
    """Transfer pricing, read apart by `load_intercompany` (process workers read it without vendor secrets)."""


@dataclass(frozen=True)
class ConnectionEntry:
    """A connection as routing needs it: the resolved `Connection`, its vendor package and its options."""

    connection: Connection
    package: VendorPackage
    simulated: bool
    simulator: Mapping[str, int | float | bool | str | None]


@dataclass(frozen=True)
class Connections:
    """The decoded file: connections by name and, per entity, the connection of each domain."""

    source: str
    entries: Mapping[str, ConnectionEntry]
    routes: Mapping[str, Mapping[str, str]]
    """entity code (or ``default``) -> domain -> connection name; the default names every domain."""

    def connection_for(self, domain: str, legal_entity: str | None) -> ConnectionEntry:
        """The connection serving `domain` for `legal_entity` (the default's for an entity not named)."""
        named = self.routes.get(legal_entity or DEFAULT_ENTITY, {})
        return self.entries[named.get(domain) or self.routes[DEFAULT_ENTITY][domain]]

    def default_for(self, domain: str) -> ConnectionEntry:
        return self.entries[self.routes[DEFAULT_ENTITY][domain]]

    def for_domain(self, domain: str) -> tuple[ConnectionEntry, ...]:
        """Every connection serving `domain`, the default's first, then in file order."""
        names = [self.routes[DEFAULT_ENTITY][domain]]
        names += [r[domain] for r in self.routes.values() if domain in r and r[domain] not in names]
        return tuple(self.entries[n] for n in names)

    def entities_of(self, connection: str, known: Iterable[str]) -> tuple[str, ...]:
        """The legal entities (of `known`) some domain of which `connection` serves."""
        return tuple(e for e in known if any(self.connection_for(d, e).connection.name == connection
                                             for d in self.routes[DEFAULT_ENTITY]))

    def vendor_of(self, domain: str, legal_entity: str | None) -> str:
        return self.connection_for(domain, legal_entity).package.name

    def with_default_vendors(self, choice: Mapping[str, VendorPackage]) -> Connections:
        """The file with the default entry's connection of each domain in `choice` replaced by a plain
        account of the chosen vendor (named after it): how the older ``PSCONNECT_VENDORS`` still applies."""
        if not choice:
            return self
        entries = dict(self.entries)
        routes = {e: dict(r) for e, r in self.routes.items()}
        for domain, package in choice.items():
            current = entries[routes[DEFAULT_ENTITY][domain]]
            if current.package.name == package.name:
                continue
            name = package.name if package.name not in entries else f"{package.name}-{domain}"
            entries[name] = ConnectionEntry(
                connection=Connection(name=name, vendor=package.name, base_url=package.base_url),
                package=package, simulated=True, simulator={})
            routes[DEFAULT_ENTITY][domain] = name
        return Connections(source=self.source, entries=entries, routes=routes)


def load_connections(path: Path | None = None, *, env: Mapping[str, str] | None = None,
                     packages: Iterable[VendorPackage] | None = None) -> Connections:
    """Decode the connections file: `path`, else $PSCONNECT_CONNECTIONS, else the shipped one."""
    environ = os.environ if env is None else env
    path = _file(path, environ)
    shown = _shown(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConnectionsError(f"{shown}: cannot read the connections file ({exc.strerror or exc})") from exc
    return parse_connections(raw, shown, env=environ, packages=packages)


def load_intercompany(path: Path | None = None, *, env: Mapping[str, str] | None = None) -> Intercompany:
    """Only the file's transfer pricing: a worker process, which reaches no vendor, needs no vendor secrets."""
    path = _file(path, os.environ if env is None else env)
    shown = _shown(path)
    try:
        doc = msgspec.yaml.decode(path.read_bytes(), type=_Intercompany)
    except OSError as exc:
        raise ConnectionsError(f"{shown}: cannot read the connections file ({exc.strerror or exc})") from exc
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConnectionsError(f"{shown}: {_one_line(str(exc))}") from exc
    return Intercompany() if doc.intercompany is None else \
        _convert(doc.intercompany, Intercompany, f"{shown}: intercompany")


class _Intercompany(msgspec.Struct, frozen=True):
    intercompany: object = None


def parse_connections(raw: bytes, shown: str = "connections", *, env: Mapping[str, str] | None = None,
                      packages: Iterable[VendorPackage] | None = None) -> Connections:
    """The file's text as `Connections`, every reference and secret checked (`shown` names it in errors)."""
    environ = os.environ if env is None else env
    try:
        doc = msgspec.yaml.decode(raw, type=_File)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConnectionsError(f"{shown}: {_one_line(str(exc))}") from exc
    if doc.format != FORMAT_VERSION:
        raise ConnectionsError(f"{shown}: format: {doc.format} is not supported (expected {FORMAT_VERSION})")
    vendors = {p.name: p for p in (installed() if packages is None else packages)}
    entries: dict[str, ConnectionEntry] = {}
    for name, body in doc.connections.items():
        where = f"{shown}: connections.{name}"
        if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
            raise ConnectionsError(f"{where}: a connection name is lower-case letters, digits and '-' "
                                   f"(pattern {NAME_PATTERN})")
        spec = _convert(body, ConnectionSpec, where)
        package = vendors.get(spec.vendor)
        if package is None:
            raise ConnectionsError(f"{where}.vendor: {spec.vendor!r} is not an installed vendor "
                                   f"(installed: {', '.join(sorted(vendors)) or 'none'})")
        credentials = {key: _secret(_convert(ref, SecretRef, f"{where}.credentials.{key}"),
                                    f"{where}.credentials.{key}", environ)
                       for key, ref in spec.credentials.items()}
        entries[name] = ConnectionEntry(
            connection=Connection(name=name, vendor=spec.vendor, base_url=spec.base_url or package.base_url,
                                  tenant=spec.tenant, identity_url=spec.identity_url, credentials=credentials,
                                  pacing=_budget(spec.pacing)),
            package=package, simulated=spec.simulated, simulator=spec.simulator)
    if DEFAULT_ENTITY not in doc.entities:
        raise ConnectionsError(f"{shown}: entities.default: missing (it serves every entity not named)")
    routes: dict[str, dict[str, str]] = {}
    for entity, body in doc.entities.items():
        where = f"{shown}: entities.{entity}"
        if not isinstance(entity, str) or not re.match(ENTITY_PATTERN, entity):
            raise ConnectionsError(f"{where}: an entity is `default` or a legal entity code such as US01")
        spec_e = _convert(body, EntitySpec, where)
        chosen = {d: getattr(spec_e, d) for d in DOMAINS if getattr(spec_e, d) is not None}
        for domain, name in chosen.items():
            entry = entries.get(name)
            if entry is None:
                raise ConnectionsError(f"{where}.{domain}: names the connection {name!r}, which is not declared "
                                       f"under connections")
            if domain not in entry.package.domains:
                raise ConnectionsError(f"{where}.{domain}: the connection {name!r} is a {entry.package.name} "
                                       f"account, which does not serve the {domain} domain "
                                       f"(it serves {', '.join(entry.package.domains)})")
        routes[entity] = chosen
    served = {d for p in vendors.values() for d in p.domains}
    missing = [d for d in DOMAINS if d in served and d not in routes[DEFAULT_ENTITY]]
    if missing:
        raise ConnectionsError(f"{shown}: entities.default.{missing[0]}: missing (the default entry names a "
                               "connection for every domain)")
    return Connections(source=shown, entries=entries, routes=routes)


def _convert(body: object, type_: type[S], where: str) -> S:
    try:
        return msgspec.convert(body, type_)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$")
        field = path.rstrip("`")
        unknown = re.match(r"^Object contains unknown field `([^`]+)`$", message)
        if unknown:
            field, message = f".{unknown.group(1)}", "unknown field"
        raise ConnectionsError(f"{where}{field}: {message}") from exc


def _check_percent(value: Decimal) -> None:
    if not value.is_finite() or not 0 <= value <= 1000:
        raise ValueError("a markup is a percentage from 0 to 1000")


def _budget(pacing: Pacing | bool) -> bool | VendorBudget:
    return pacing if isinstance(pacing, bool) else VendorBudget(pacing.requests, pacing.seconds)


def _secret(ref: SecretRef, where: str, env: Mapping[str, str]) -> str:
    if ref.env is not None:
        value = env.get(ref.env)
        if not value:
            raise ConnectionsError(f"{where}: the environment variable {ref.env} is not set")
        return value
    assert ref.file is not None
    try:
        return Path(ref.file).read_text().strip()
    except OSError as exc:
        raise ConnectionsError(f"{where}: cannot read the secret file {ref.file} "
                               f"({exc.strerror or type(exc).__name__})") from exc


def _file(path: Path | None, environ: Mapping[str, str]) -> Path:
    """`path`, else $PSCONNECT_CONNECTIONS, else the shipped file."""
    return path or Path(environ.get(CONNECTIONS_ENV) or DEFAULT_FILE)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd())) if path.is_absolute() else str(path)
    except ValueError:
        return str(path)


def _one_line(text: str) -> str:
    return " ".join(text.split())
