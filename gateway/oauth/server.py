"""authlib's AuthorizationServer on Litestar: client credentials in, RFC 9068 JWTs out.

authlib is framework-neutral and synchronous; this module is its thin integration
(STACK-NOTES "JWT and OAuth2", pitfalls 1-5):

1. the request keeps Litestar's case-insensitive headers, so Basic auth is found;
2. the route awaits and parses the form first and hands authlib a finished payload;
3. the grant accepts `client_secret_post` as well as `client_secret_basic`;
4. `expires_generator` is the configured TTL, not authlib's 10-day default;
5. `get_jwks()` returns a cached joserfc `KeySet`, not a dict re-imported per token.

Tokens are self-contained; nothing is saved per token (`save_token` is a no-op).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from authlib.common.security import generate_token, is_secure_transport
from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc import jwt
from joserfc.jwk import KeySet

from gateway.oauth.clients import ClientRegistry, OAuthClient
from gateway.oauth.keys import SIGNING_ALG, SigningKeys

__all__ = ["OAuthServer", "TokenHttpRequest", "TokenHttpResponse"]


@dataclass(frozen=True, slots=True)
class TokenHttpRequest:
    """What the route hands authlib: the already-parsed form and the original headers."""

    method: str
    headers: Mapping[str, str]
    form: dict[str, str]


@dataclass(frozen=True, slots=True)
class TokenHttpResponse:
    status: int
    body: dict[str, Any]
    headers: list[tuple[str, str]]


class _FormRequest(OAuth2Request):  # type: ignore[misc]
    def __init__(self, method: str, uri: str, headers: Mapping[str, str], form: dict[str, str]) -> None:
        super().__init__(method, uri, headers=headers)
        self._form = form
        self.payload = BasicOAuth2Payload(form)

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


class _ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post"]

    def validate_requested_scope(self) -> None:
        # authlib only checks the server-wide list; the client's own grant is what matters.
        client: OAuthClient = self.request.client
        requested = (self.request.payload.scope or "").split()
        denied = sorted(set(requested) - set(client.scopes))
        if denied:
            raise InvalidScopeError(f"The client may not request: {' '.join(denied)}")


class _TokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    """RFC 9068 tokens; the claims are built here (not by authlib) so the clock is injectable."""

    def __init__(self, issuer: str, audience: str, ttl: int, keys: SigningKeys,
                 clock: Callable[[], float]) -> None:
        super().__init__(issuer=issuer, alg=SIGNING_ALG, expires_generator=ttl)
        self.audience = audience
        self.ttl = ttl
        self.keys = keys
        self.clock = clock

    def get_jwks(self) -> KeySet:
        return self.keys.signing_keyset()

    def access_token_generator(self, client: OAuthClient, grant_type: str, user: object, scope: str) -> str:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": client.client_id, "aud": self.audience, "client_id": client.client_id,
            "iat": now, "nbf": now, "exp": now + self.ttl, "jti": generate_token(22), "scope": scope,
        }
        if client.legal_entities is not None:
            claims["legal_entities"] = list(client.legal_entities)
        # A KeySet holding only the active key: joserfc stamps its kid into the header.
        return jwt.encode({"alg": SIGNING_ALG, "typ": "at+jwt"}, claims, self.get_jwks(), algorithms=[SIGNING_ALG])


class OAuthServer(AuthorizationServer):  # type: ignore[misc]
    """The token endpoint's logic; `token_response` is called by the route (in a worker thread)."""

    def __init__(self, *, issuer: str, audience: str, token_ttl: int, clients: ClientRegistry,
                 keys: SigningKeys, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.issuer = issuer.rstrip("/")
        self.token_endpoint = self.issuer + "/oauth2/token"
        if not is_secure_transport(self.token_endpoint):
            # Fail at start-up, not on every token request (authlib would answer insecure_transport).
            raise ValueError(f"issuer {issuer!r} must be https or loopback (or set AUTHLIB_INSECURE_TRANSPORT=1 "
                             "behind a TLS-terminating proxy)")
        self.clients = clients
        self.keys = keys
        self.token_ttl = token_ttl
        self.generator = _TokenGenerator(self.issuer, audience, token_ttl, keys, clock)
        self.register_grant(_ClientCredentials)
        self.register_token_generator("default", self.generator)

    # --- authlib integration hooks ---------------------------------------------------
    def query_client(self, client_id: str) -> OAuthClient | None:
        return self.clients.active(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """JWTs are self-contained; nothing to store."""

    def create_oauth2_request(self, request: TokenHttpRequest) -> OAuth2Request:
        return _FormRequest(request.method, self.token_endpoint, request.headers, request.form)

    def create_json_request(self, request: object) -> Any:
        raise NotImplementedError("no JSON endpoints are registered")

    def handle_response(self, status: int, body: dict[str, Any], headers: list[tuple[str, str]]
                        ) -> TokenHttpResponse:
        return TokenHttpResponse(status, dict(body), list(headers))

    def send_signal(self, name: str, *args: object, **kwargs: object) -> None:
        """No signal bus; the gateway's audit policy records token requests."""

    # --- entry points --------------------------------------------------------------------
    def token_response(self, request: TokenHttpRequest) -> TokenHttpResponse:
        response: TokenHttpResponse = self.create_token_response(request)
        return response

    def issue_service_token(self, client_id: str, scopes: Sequence[str]) -> str:
        """A token for a registered client without an HTTP round-trip (the service identity).

        The caller is trusted code in the same process, so no secret is checked; the
        client must still exist, not be revoked, and be allowed the requested scopes.
        """
        client = self.clients.active(client_id)
        if client is None:
            raise LookupError(f"unknown or revoked client {client_id!r}")
        denied = sorted(set(scopes) - set(client.scopes))
        if denied:
            raise PermissionError(f"client {client_id!r} may not request: {' '.join(denied)}")
        scope = client.get_allowed_scope(" ".join(scopes))
        token: str = self.generator.access_token_generator(
            client=client, grant_type="client_credentials", user=None, scope=scope)
        return token
