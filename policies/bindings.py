"""The declarative bindings: which APIs exist, what they require, which policies run.

`policies/gateway.yaml` is decoded once at start-up into these Structs; a bad file
stops start-up with the file and the field named. Scopes follow the house rule
`<layer>.<api>:<read|write>`: safe methods need `read`, the rest `write`, unless an
operation names its own. The most specific setting wins (operation > API > global;
for limits consumer+API > consumer > plan+API > plan, see `policies/plans.py`).

Format 2 added plans, consumers and each API's spike arrest; a format-1 file is
refused with a message saying so rather than read half-way. Format 3 added `policies`:
the policies in front of every API by their registered name (`policies/registry.py`),
and each API's own `policies` over them; a format-2 file runs `DEFAULT_POLICIES`. Request governance is
declared here too: `validation` (global, and per API), `idempotency` (which operations
honour or require `Idempotency-Key`), `cors`, `trusted_proxies` and each consumer's
`ip_allow` — every policy's configuration lives in this one file.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from policies.auth import AuthConfig
from policies.cors import CorsConfig
from policies.idempotency import IdempotencyConfig
from policies.ip_allowlist import IpAllowListConfig
from policies.plans import Consumer, Plan, SpikeArrestConfig
from policies.validation import ValidationConfig

__all__ = [
    "ApiBinding",
    "Bindings",
    "BindingsError",
    "Deprecation",
    "OperationBinding",
    "SelfService",
    "check_policies",
    "load_bindings",
    "required_scopes",
    "scope_needs_approval",
]

DEFAULT_FILE = Path(__file__).with_name("gateway.yaml")
BINDINGS_ENV = "PSCONNECT_BINDINGS"
"""Environment variable naming another bindings file (a deployment's own plans and consumers)."""
FORMAT_VERSION = 3
FORMAT_VERSIONS = (2, 3)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PolicyName = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]*$")]
PolicyEntry = Annotated[bool | dict[str, Any], Meta(description=(
    "true: the policy runs (its settings in its own block of this file); false: it does not; "
    "a mapping: it runs with these settings (a policy that takes its settings here)."))]
DEFAULT_POLICIES: dict[str, bool | dict[str, Any]] = {
    "auth": True, "ip_allowlist": True, "spike_arrest": True, "rate_limit": True, "quota": True,
    "validation": True, "versioning": True, "idempotency": True, "audit": True}
"""The chain of a file that names none (every format-2 file): today's standard chain."""
ScopeName = Annotated[str, Meta(pattern=r"^[a-z_]+\.[a-z_]+:(read|write|admin)$")]


class Deprecation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A deprecated API version answers with Deprecation, Sunset and Link headers."""

    since: Annotated[dt.date, Meta(description="Date the version was deprecated.")]
    sunset: Annotated[dt.date, Meta(description="Date after which the version may be removed.")]
    successor: Annotated[str | None, Meta(description="URL of the successor version's docs.")] = None

    def __post_init__(self) -> None:
        if self.sunset < self.since:
            raise ValueError("sunset must not be before since")


class OperationBinding(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    scopes: Annotated[tuple[ScopeName, ...], Meta(description="Scopes the operation requires (all of them).")]


class ApiBinding(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One published API: its identity in the catalog and what calling it requires."""

    title: str
    layer: Literal["system", "process", "experience"]
    version: Annotated[str, Meta(pattern=r"^v\d+$")] = "v1"
    owner: Annotated[str, Meta(description="Team accountable for the API.")]
    lifecycle: Annotated[Literal["beta", "stable", "deprecated"], Meta(description=(
        "`stable` only once released (its document copied to contracts/releases/, which the breaking-change "
        "gate then protects); a new API is `beta` until then."))] = "beta"
    description: str = ""
    deprecation: Deprecation | None = None
    operations: dict[str, OperationBinding] = {}
    spike_arrest: Annotated[SpikeArrestConfig | None, Meta(
        description="Ceiling on all consumers together, protecting what runs behind the API.")] = None
    validation: Annotated[ValidationConfig | None, Meta(
        description="Request validation for this API, replacing the global `validation`.")] = None
    policies: Annotated[dict[PolicyName, PolicyEntry], Meta(description=(
        "Policies of this API over the global `policies`: adds one, changes its settings, or removes it (false)."
    ))] = {}

    def __post_init__(self) -> None:
        if (self.lifecycle == "deprecated") != (self.deprecation is not None):
            raise ValueError("lifecycle 'deprecated' and a deprecation block go together")


class SelfService(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which scopes a portal application gets at registration; every other scope waits for an admin.

    A scope's sensitivity is its API's layer and its access (`<layer>.<api>:<access>`):
    finance writes and the system layer's direct vendor access are never self-service.
    """

    layers: Annotated[tuple[Literal["system", "process", "experience"], ...], Meta(
        description="Layers whose scopes (of the accesses below) are granted at registration.")] = (
        "experience", "process")
    access: Annotated[tuple[Literal["read", "write", "admin"], ...], Meta(
        description="Accesses granted at registration on those layers.")] = ("read",)


ApiName = Annotated[str, Meta(pattern=r"^[a-z_]+\.[a-z_]+$")]
PlanName = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]*$")]


class Bindings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    format_version: Annotated[Literal[2, 3], Meta(description="Version of this file's format.")]
    policies: Annotated[dict[PolicyName, PolicyEntry], Meta(description=(
        "Policies in front of every API, by registered name (entry-point group psconnect.policies)."
    ))] = msgspec.field(default_factory=lambda: dict(DEFAULT_POLICIES))
    auth: Annotated[AuthConfig, Meta(description="Authentication policy settings.")] = AuthConfig()
    apis: dict[ApiName, ApiBinding]
    plans: Annotated[dict[PlanName, Plan], Meta(description="Subscription tiers with their limits.")] = \
        msgspec.field(default_factory=lambda: {"unlimited": Plan(description="No limits (no plans declared).")})
    default_plan: Annotated[str, Meta(description="Plan of consumers not listed in `consumers`.")] = "unlimited"
    consumers: Annotated[dict[str, Consumer], Meta(description="OAuth client id -> plan and overrides.")] = {}
    validation: Annotated[ValidationConfig, Meta(description="Request validation of every API.")] = \
        ValidationConfig()
    idempotency: Annotated[IdempotencyConfig, Meta(description="Operations that honour Idempotency-Key.")] = \
        IdempotencyConfig()
    cors: Annotated[CorsConfig, Meta(description="Browsers' cross-origin access (the portal's try-it).")] = \
        CorsConfig()
    trusted_proxies: Annotated[tuple[str, ...], Meta(description=(
        "CIDR blocks of load balancers whose X-Forwarded-For is believed (for `ip_allow`)."))] = ()
    self_service: Annotated[SelfService, Meta(description=(
        "Scopes a portal application is granted at registration; the rest wait for an admin's approval."))] = \
        SelfService()

    def __post_init__(self) -> None:
        # Cross-field rules; msgspec reports them at decode time, with the path `$`.
        if self.default_plan not in self.plans:
            raise ValueError(f"default_plan: unknown plan {self.default_plan!r} (plans: {sorted(self.plans)})")
        for name, plan in self.plans.items():
            for api in plan.apis:
                if api not in self.apis:
                    raise ValueError(f"plans.{name}.apis: unknown API {api!r}")
        for client_id, consumer in self.consumers.items():
            if consumer.plan not in self.plans:
                raise ValueError(f"consumers.{client_id}.plan: unknown plan {consumer.plan!r}")
            for api in consumer.apis:
                if api not in self.apis:
                    raise ValueError(f"consumers.{client_id}.apis: unknown API {api!r}")
        self.ip_allowlist()  # a bad CIDR block stops loading

    def ip_allowlist(self) -> IpAllowListConfig:
        """The IP allow-list policy's config: each consumer's `ip_allow`, behind `trusted_proxies`."""
        return IpAllowListConfig(clients={cid: c.ip_allow for cid, c in self.consumers.items() if c.ip_allow},
                                 trusted_proxies=self.trusted_proxies)


class BindingsError(Exception):
    """The bindings file is invalid; the message names the file and the field."""


def load_bindings(path: Path | None = None) -> Bindings:
    """Decode the bindings file: `path`, else $PSCONNECT_BINDINGS, else the published `gateway.yaml`."""
    path = path or Path(os.environ.get(BINDINGS_ENV) or DEFAULT_FILE)
    shown = _shown(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise BindingsError(f"{shown}: file not found") from exc
    try:
        bindings = msgspec.yaml.decode(raw, type=Bindings)
    except msgspec.ValidationError as exc:
        found = _format_version(raw)
        if found is not None and found not in FORMAT_VERSIONS:
            raise BindingsError(f"{shown}: format_version {found} is not supported (expected 2 or {FORMAT_VERSION}; "
                                "format 2 added plans, consumers and spike_arrest, format 3 `policies`)") from exc
        raise BindingsError(f"{shown}: {_one_line(explain(exc, raw))}") from exc
    except msgspec.DecodeError as exc:
        raise BindingsError(f"{shown}: {_one_line(str(exc))}") from exc
    check_policies(bindings, shown)
    return bindings


def _shown(path: Path) -> str:
    """The file as a person would name it: relative to the working directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd())) if path.is_absolute() else str(path)
    except ValueError:
        return str(path)


def _one_line(text: str) -> str:
    return " ".join(text.split())


_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\.\.\.|\d+)\]")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `([^`]+)`$")


def explain(exc: msgspec.ValidationError, raw: bytes) -> str:
    """msgspec's error as `plans.gold.limits.per_minute: Expected …`, with the keys msgspec shows as `[...]`.

    msgspec names a mapping's key only as `[...]` (`$.plans[...].limits`); the failing key is
    found by decoding the file again with that mapping narrowed to one entry at a time — the
    entry whose narrowed file fails with the same error is the culprit.
    """
    found = _AT.match(str(exc))
    assert found is not None  # the pattern matches any text
    message, path = found.group("message"), found.group("path")
    if path is None:
        return message  # a cross-field rule: its message names its fields itself
    try:
        doc = msgspec.yaml.decode(raw)
    except msgspec.DecodeError:
        doc = None
    keys: list[str | int] = []
    for name, index in _SEGMENT.findall(path):
        if name:
            keys.append(name)
        elif index != "...":
            keys.append(int(index))
        else:
            keys.append(_culprit(doc, keys, str(exc)) or "[...]")
    unknown = _UNKNOWN_FIELD.match(message)
    if unknown:
        keys.append(unknown.group(1))
        message = "unknown field"
    dotted = "".join(f"[{k}]" if isinstance(k, int) else ("" if i == 0 else ".") + k for i, k in enumerate(keys))
    return f"{dotted}: {message}" if dotted else message


def _culprit(doc: object, keys: list[str | int], error: str) -> str | None:
    """The key of the mapping at `keys` whose entry alone reproduces `error`."""
    mapping = _at(doc, keys)
    if not isinstance(mapping, dict):
        return None
    for key in mapping:
        narrowed = copy.deepcopy(doc)
        inner = _at(narrowed, keys)
        assert isinstance(inner, dict)
        for other in [k for k in inner if k != key]:
            del inner[other]
        try:
            msgspec.convert(narrowed, Bindings, builtin_types=(dt.datetime, dt.date))
        except msgspec.ValidationError as again:
            if str(again) == error:
                return str(key)
    return None


def _at(doc: object, keys: list[str | int]) -> object:
    for key in keys:
        found = (isinstance(doc, dict) and key in doc) or \
            (isinstance(doc, list) and isinstance(key, int) and key < len(doc))
        if not found:
            return None
        doc = doc[key]  # type: ignore[index]
    return doc


def check_policies(bindings: Bindings, path: Path | str = "bindings") -> None:
    """Every `policies` entry names a registered policy (entry-point group psconnect.policies)."""
    from policies.registry import UnknownPolicy
    from policies.registry import check_policies as check  # the registry loads the policy modules, which import this

    try:
        check(bindings)
    except UnknownPolicy as exc:
        raise BindingsError(f"{path}: {exc}") from exc


def _format_version(raw: bytes) -> object:
    try:
        doc = msgspec.yaml.decode(raw)
    except msgspec.DecodeError:
        return None
    return doc.get("format_version") if isinstance(doc, dict) else None


def required_scopes(bindings: Bindings, api: str, operation_id: str, method: str) -> tuple[str, ...]:
    """Scopes a call needs: the operation's own, else read/write of its API by method."""
    binding = bindings.apis.get(api)
    if binding is None:
        raise BindingsError(f"route of API {api!r} has no binding in the bindings file")
    op = binding.operations.get(operation_id)
    if op is not None:
        return op.scopes
    return (f"{api}:{'read' if method.upper() in SAFE_METHODS else 'write'}",)


def scope_needs_approval(bindings: Bindings, scope: str) -> bool:
    """True unless `scope` is self-service (`self_service`): an API's scope outside it, or no API's, waits."""
    api, _, access = scope.partition(":")
    binding = bindings.apis.get(api)
    rule = bindings.self_service
    return binding is None or binding.layer not in rule.layers or access not in rule.access
