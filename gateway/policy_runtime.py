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
from policies.versioning import Versioning, VersioningConfig

__all__ = ["PolicyRuntime"]


class PolicyRuntime:
    def __init__(self, settings: Settings, bindings: Bindings, oauth: OAuth) -> None:
        self.settings = settings
        self.bindings = bindings
        self.oauth = oauth
        self._auth = Authentication(bindings.auth, oauth.validator)

    def policies_for(self, api: str) -> list[Policy[Any]]:
        """The policies of one API; the chain orders them by `order`."""
        binding = self.bindings.apis[api]
        return [self._auth, Versioning(VersioningConfig(deprecation=binding.deprecation))]

    async def startup(self) -> None:
        """Open what the policies share (stores, connections)."""

    async def shutdown(self) -> None:
        """Close what `startup` opened."""
