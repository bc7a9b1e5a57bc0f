"""Builds each API's policy chain from the bindings and the runtime the policies need.

One place decides which policies guard an API and with what configuration; the
chain middleware only runs them. Policies that hold state (counters, stores) get
it from here and release it in `shutdown`, so a policy module stays pure config +
hooks, as Kong's plugins are.
"""

from __future__ import annotations

from typing import Any

from gateway.oauth import OAuth
from gateway.settings import Settings
from policies.auth import Authentication
from policies.base import Policy
from policies.bindings import Bindings
from policies.idempotency import DEFAULT_IDEMPOTENCY, Idempotency
from policies.idempotency_stores import create_store
from policies.ip_allowlist import DEFAULT_IP_ALLOWLIST, IpAllowList
from policies.validation import DEFAULT_VALIDATION, RequestValidation
from policies.versioning import Versioning, VersioningConfig

__all__ = ["PolicyRuntime"]


class PolicyRuntime:
    def __init__(self, settings: Settings, bindings: Bindings, oauth: OAuth) -> None:
        self.settings = settings
        self.bindings = bindings
        self.oauth = oauth
        self._auth = Authentication(bindings.auth, oauth.validator)
        # Request governance (issue 4 part B): module-default configs until the bindings map them.
        self._idempotency_store = create_store(settings.redis_url)
        self._request_policies: list[Policy[Any]] = [
            IpAllowList(DEFAULT_IP_ALLOWLIST), RequestValidation(DEFAULT_VALIDATION),
            Idempotency(DEFAULT_IDEMPOTENCY, self._idempotency_store)]

    def policies_for(self, api: str) -> list[Policy[Any]]:
        """The policies of one API; the chain orders them by `order`."""
        binding = self.bindings.apis[api]
        return [self._auth, Versioning(VersioningConfig(deprecation=binding.deprecation)), *self._request_policies]

    async def startup(self) -> None:
        """Open what the policies share (stores, connections)."""

    async def shutdown(self) -> None:
        """Close what `startup` opened."""
        await self._idempotency_store.aclose()
