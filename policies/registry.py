"""The policy registry: which policies exist, how each is built, and each API's resolved chain.

Every policy module declares one `PolicyFactory` (its name, how to build the policy from
the bindings and the shared `PolicyServices`) and registers it in the entry-point group
`psconnect.policies` (pyproject.toml, one line per policy), so another installed package
— a firm's own policy — is found the same way. The bindings file (`policies:` globally,
and each API's `policies:`) names which of them run; `PolicyAssembly` builds an API's
chain from that, and the chain orders it by each policy's `order`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import msgspec

from policies.base import Policy

if TYPE_CHECKING:
    from foundation.audit import AuditLog
    from policies.auth import TokenValidatorProtocol
    from policies.bindings import ApiBinding, Bindings
    from policies.idempotency_stores import IdempotencyStore
    from policies.plans import PlanLookup
    from policies.quota import UsageMeter
    from policies.stores import CounterStore

__all__ = ["ENTRY_POINT_GROUP", "PolicyAssembly", "PolicyBuild", "PolicyFactory", "PolicyServices",
           "UnknownPolicy", "check_policies", "registered_policies", "resolve_chain"]

ENTRY_POINT_GROUP = "psconnect.policies"


@dataclass(frozen=True, kw_only=True)
class PolicyServices:
    """What the gateway runtime shares with the policies it builds (the stores live as long as it does)."""

    counters: CounterStore
    """Rate-limit, quota and spike-arrest counters (Redis, or this process's memory)."""
    meter: UsageMeter
    """Per-consumer usage counters (requests, refusals) reported by the portal."""
    token_validator: TokenValidatorProtocol
    idempotency_store: IdempotencyStore
    subscriptions: PlanLookup | None = None
    """Consumer -> the plan its portal application subscribed to."""
    audit: AuditLog | None = None
    """The audit trail the `audit` policy appends to; None: writes are not recorded."""


@dataclass(frozen=True, kw_only=True)
class PolicyBuild:
    """Everything a factory builds one policy instance from."""

    bindings: Bindings
    api: str
    config: Any
    """The policy's own settings from the bindings' `policies` entry (its factory's `config` type), else None."""
    services: PolicyServices

    @property
    def binding(self) -> ApiBinding:
        return self.bindings.apis[self.api]


@dataclass(frozen=True, kw_only=True)
class PolicyFactory:
    """How one named policy is built. `build` may return None: the policy has nothing to do for this
    API (a spike arrest where the API declares no ceiling)."""

    name: str
    build: Callable[[PolicyBuild], Policy[Any] | None]
    config: type[msgspec.Struct] | None = None
    """Type of the settings a bindings `policies` entry may carry; None: the policy reads its own
    blocks of the bindings (auth, validation, ...) and its entry takes no settings."""
    shared: bool = False
    """One instance serves every API that runs the policy with the global settings (its state — a token
    cache — is shared); the factory then must not depend on `api`."""


class UnknownPolicy(ValueError):
    """A bindings entry names a policy nobody registered, or gives it settings it cannot read."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@cache
def registered_policies() -> Mapping[str, PolicyFactory]:
    """The factories of the entry-point group `psconnect.policies`, by name."""
    found: dict[str, PolicyFactory] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        factory = ep.load()
        if not isinstance(factory, PolicyFactory):
            raise TypeError(f"entry point {ep.name} = {ep.value!r} ({ENTRY_POINT_GROUP}) is not a PolicyFactory")
        if factory.name != ep.name:
            raise TypeError(f"entry point {ep.name} = {ep.value!r} ({ENTRY_POINT_GROUP}) builds {factory.name!r}")
        found[ep.name] = factory
    return found


@dataclass(frozen=True)
class _Use:
    factory: PolicyFactory
    config: Any
    own: bool
    """Settings given by the API's own entry (not the global one)."""


def resolve_chain(bindings: Bindings, api: str,
                  registry: Mapping[str, PolicyFactory] | None = None) -> list[_Use]:
    """The policies `api` runs: the global `policies`, then the API's own entries (which add a policy,
    give it other settings, or with `false` remove it). Raises `UnknownPolicy` naming the field."""
    registry = registered_policies() if registry is None else registry
    uses: dict[str, _Use] = {}
    for where, entries in (("policies", bindings.policies), (f"apis.{api}.policies", bindings.apis[api].policies)):
        for name, use in _read(where, entries, registry).items():
            if use is None:
                uses.pop(name, None)
            else:
                uses[name] = use
    return list(uses.values())


def check_policies(bindings: Bindings, registry: Mapping[str, PolicyFactory] | None = None) -> None:
    """Every `policies` entry of the bindings names a registered policy with settings it can read."""
    registry = registered_policies() if registry is None else registry
    _read("policies", bindings.policies, registry)
    for api, binding in bindings.apis.items():
        _read(f"apis.{api}.policies", binding.policies, registry)


def _read(where: str, entries: Mapping[str, bool | dict[str, Any]],
          registry: Mapping[str, PolicyFactory]) -> dict[str, _Use | None]:
    read: dict[str, _Use | None] = {}
    for name, entry in entries.items():
        factory = registry.get(name)
        if factory is None:
            known = ", ".join(sorted(registry)) or f"none: is the {ENTRY_POINT_GROUP} entry-point group installed?"
            raise UnknownPolicy(f"{where}.{name}", f"unknown policy {name!r} (registered: {known})")
        read[name] = None if entry is False else \
            _Use(factory, _settings(factory, entry, f"{where}.{name}"), own=where != "policies")
    return read


def _settings(factory: PolicyFactory, entry: bool | dict[str, Any], where: str) -> Any:
    if factory.config is None:
        if isinstance(entry, dict) and entry:
            raise UnknownPolicy(where, f"policy {factory.name!r} takes no settings here (use true or false; "
                                "its settings have their own block in this file)")
        return None
    try:
        return msgspec.convert(entry if isinstance(entry, dict) else {}, factory.config)
    except msgspec.ValidationError as exc:
        raise UnknownPolicy(where, str(exc)) from exc


class PolicyAssembly:
    """Builds each API's policies from the bindings and the shared services (what `PolicyChain` calls)."""

    def __init__(self, bindings: Bindings, services: PolicyServices,
                 registry: Mapping[str, PolicyFactory] | None = None) -> None:
        self.bindings = bindings
        self.services = services
        self.registry = registered_policies() if registry is None else registry
        self._shared: dict[str, Policy[Any] | None] = {}
        check_policies(bindings, self.registry)  # an unknown name stops start-up, not the first request

    def policies_for(self, api: str) -> list[Policy[Any]]:
        """The policies of one API, unordered (the chain orders them by `order`)."""
        built: list[Policy[Any]] = []
        for use in resolve_chain(self.bindings, api, self.registry):
            request = PolicyBuild(bindings=self.bindings, api=api, config=use.config, services=self.services)
            if use.factory.shared and not use.own:
                name = use.factory.name
                if name not in self._shared:
                    self._shared[name] = use.factory.build(request)
                policy = self._shared[name]
            else:
                policy = use.factory.build(request)
            if policy is not None:
                built.append(policy)
        return built
