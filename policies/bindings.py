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

import datetime as dt
import os
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
    "check_policies",
    "load_bindings",
    "required_scopes",
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
    "validation": True, "versioning": True, "idempotency": True}
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
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise BindingsError(f"{path}: file not found") from exc
    try:
        bindings = msgspec.yaml.decode(raw, type=Bindings)
    except msgspec.ValidationError as exc:
        found = _format_version(raw)
        if found is not None and found not in FORMAT_VERSIONS:
            raise BindingsError(f"{path}: format_version {found} is not supported (expected 2 or {FORMAT_VERSION}; "
                                "format 2 added plans, consumers and spike_arrest, format 3 `policies`)") from exc
        raise BindingsError(f"{path}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise BindingsError(f"{path}: {exc}") from exc
    check_policies(bindings, path)
    return bindings


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
