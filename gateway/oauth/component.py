"""One object that assembles the authorization server for the gateway's app factory."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import httpx
import sqlalchemy as sa
from litestar.types import ControllerRouterHandler

from foundation.db import metadata as db_metadata
from gateway.oauth.clients import ClientRegistry, oauth_clients
from gateway.oauth.keys import SigningKeys, signing_keys
from gateway.oauth.routes import AuthorizationServerMetadata, oauth_routes
from gateway.oauth.server import OAuthServer
from gateway.oauth.validator import TokenValidator
from gateway.settings import Settings
from policies.failure_throttle import FailureThrottle

__all__ = ["OAuth"]


class OAuth:
    """Clients, signing keys, token endpoint and validator, configured from `Settings`.

    Args:
        settings: issuer, audience, token_ttl, key_rotation_days, external_issuers.
        engine: the gateway's SQLAlchemy engine (`foundation.db.create_engine`).
        http: client used to fetch external IdPs' JWKS (required when any are configured).
        leeway: clock-skew tolerance for `exp`/`nbf`/`iat`, seconds.
        scopes_supported: published in the RFC 8414 metadata when given.
        jwks_cooldown: least seconds between two fetches of one external IdP's JWKS.
        clock: time source of key rotation and validation (tests move it).
    """

    realm = "psconnect"

    def __init__(self, settings: Settings, engine: sa.Engine, *, http: httpx.AsyncClient | None = None,
                 leeway: int = 30, scopes_supported: Sequence[str] | None = None,
                 jwks_cooldown: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.engine = engine
        self.issuer = settings.issuer.rstrip("/")
        self.scopes_supported = list(scopes_supported) if scopes_supported is not None else None
        self.clients = ClientRegistry(engine)
        self.keys = SigningKeys(engine, token_ttl=settings.token_ttl, rotation_days=settings.key_rotation_days,
                                leeway=leeway, clock=clock)
        self.server = OAuthServer(issuer=self.issuer, audience=settings.audience, token_ttl=settings.token_ttl,
                                  clients=self.clients, keys=self.keys, clock=clock)
        self.validator = TokenValidator(issuer=self.issuer, audience=settings.audience, keys=self.keys, http=http,
                                        external_issuers=settings.external_issuers, leeway=leeway,
                                        jwks_cooldown=jwks_cooldown, clock=clock)
        self.throttle: FailureThrottle | None = None
        """Set by the gateway once its counter store exists: throttles failed client authentications."""

    def create_tables(self) -> None:
        """Create `oauth_clients` and `signing_keys` if missing (other tables of the metadata are left alone)."""
        db_metadata.create_all(self.engine, tables=[oauth_clients, signing_keys])

    @property
    def routes(self) -> list[ControllerRouterHandler]:
        return oauth_routes(self)

    def issue_service_token(self, client_id: str, scopes: Sequence[str]) -> str:
        return self.server.issue_service_token(client_id, scopes)

    def metadata(self) -> AuthorizationServerMetadata:
        return AuthorizationServerMetadata(
            issuer=self.issuer,
            token_endpoint=self.issuer + "/oauth2/token",
            jwks_uri=self.issuer + "/.well-known/jwks.json",
            grant_types_supported=["client_credentials"],
            token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
            response_types_supported=[],
            scopes_supported=self.scopes_supported,
        )
