"""The authorization server's public routes: token endpoint, JWKS, RFC 8414 metadata.

These are part of the gateway's published contract, so every response is
declared for OpenAPI. Token errors keep RFC 6749's `{error, error_description}`
(what OAuth client libraries parse) and add RFC 9457's `type/title/status` so
they are problem-shaped like every other error of the gateway.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Protocol
from urllib.parse import unquote

import anyio.to_thread
import msgspec
from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body
from litestar.types import ControllerRouterHandler
from msgspec import Meta

from contracts.problems import problem_type
from gateway.oauth.keys import SigningKeys
from gateway.oauth.server import OAuthServer, TokenHttpRequest
from policies.failure_throttle import FailureThrottle

__all__ = ["AuthorizationServerMetadata", "Jwks", "TokenError", "TokenRequest", "TokenResponse", "oauth_routes"]


class TokenRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """RFC 6749 §4.4.2 access-token request (form-encoded)."""

    # A plain string, so any other value reaches the handler and gets RFC 6749's 400 `unsupported_grant_type`;
    # the document still says the one value the server grants.
    grant_type: Annotated[str | None, Meta(description="Must be `client_credentials`.",
                                           extra_json_schema={"enum": ["client_credentials"]})] = None
    scope: Annotated[str | None, Meta(description="Space-separated scopes; omitted = all the client may have.")] = None
    client_id: Annotated[str | None, Meta(description="With `client_secret_post`; otherwise use HTTP Basic.")] = None
    client_secret: Annotated[str | None, Meta(description="With `client_secret_post`.")] = None


class TokenResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 6749 §5.1 successful response; `access_token` is an RFC 9068 JWT."""

    access_token: str
    token_type: Annotated[str, Meta(description="Always `Bearer`.")]
    expires_in: Annotated[int, Meta(description="Lifetime in seconds.")]
    scope: Annotated[str | None, Meta(description="The scopes granted, space-separated.")] = None


class TokenError(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 6749 §5.2 error, also carrying RFC 9457 problem members."""

    error: Annotated[str, Meta(description="invalid_request, invalid_client, invalid_grant, unauthorized_client, "
                                           "unsupported_grant_type, invalid_scope, or temporarily_unavailable "
                                           "(429: too many failed authentications; see Retry-After).")]
    type: str
    title: str
    status: int
    error_description: str | None = None


class Jwk(msgspec.Struct, kw_only=True, omit_defaults=True):
    kty: str
    kid: str
    use: str | None = None
    alg: str | None = None
    crv: str | None = None
    x: str | None = None
    y: str | None = None
    n: str | None = None
    e: str | None = None


class Jwks(msgspec.Struct, kw_only=True):
    """RFC 7517 public key set used to verify access tokens."""

    keys: list[Jwk]


class AuthorizationServerMetadata(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 8414 authorization server metadata."""

    issuer: str
    token_endpoint: str
    jwks_uri: str
    grant_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    response_types_supported: list[str]
    scopes_supported: list[str] | None = None


_TITLES = {"invalid_client": "Client authentication failed", "invalid_scope": "Scope not allowed",
           "unsupported_grant_type": "Grant type not supported", "invalid_request": "Invalid token request",
           "unauthorized_client": "Client not authorized for this grant", "invalid_grant": "Invalid grant",
           "temporarily_unavailable": "Too many failed authentications"}
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class _TokenFailure(Exception):
    """Carries an RFC 6749 error response past the gateway's problem+json handlers."""

    def __init__(self, response: Response[TokenError]) -> None:
        super().__init__(response.content.error)
        self.response = response


def _token_failure(_request: Request[Any, Any, Any], exc: _TokenFailure) -> Response[TokenError]:
    return exc.response


def _error(error: str, description: str | None, status: int, headers: dict[str, str]) -> _TokenFailure:
    body = TokenError(error=error, error_description=description, type=problem_type("oauth-" + error.replace("_", "-")),
                      title=_TITLES.get(error, "Token request failed"), status=status)
    return _TokenFailure(Response(body, status_code=status, headers=headers))


def _malformed_form(_request: Request[Any, Any, Any], exc: ValidationException) -> Response[TokenError]:
    # e.g. a repeated parameter; RFC 6749 §3.2 says invalid_request, not a 422 problem.
    return _error("invalid_request", "Malformed or repeated token request parameter.", 400, dict(_NO_STORE)).response


def _basic_client_id(authorization: str | None) -> str | None:
    """The client id of an HTTP Basic `Authorization` header; None when there is none (or not Basic)."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""  # Basic was used, but garbled: authlib answers invalid_client
    return unquote(decoded.partition(":")[0])  # RFC 6749 §2.3.1: form-encoded before Basic


class AuthorizationServer(Protocol):
    """What the routes serve: the OAuth component (`gateway.oauth.component.OAuth`)."""

    realm: str
    server: OAuthServer
    keys: SigningKeys
    throttle: FailureThrottle | None
    """Counts failed client authentications per client id and address; None = unthrottled."""

    def metadata(self) -> AuthorizationServerMetadata: ...


def oauth_routes(oauth: AuthorizationServer) -> list[ControllerRouterHandler]:
    """The three routes, bound to one `OAuth` component."""

    @post(
        "/oauth2/token",
        operation_id="gateway.issueToken",
        summary="Issue an access token (client credentials)",
        tags=["OAuth2"],
        status_code=200,
        exception_handlers={_TokenFailure: _token_failure, ValidationException: _malformed_form},
        responses={
            400: ResponseSpec(TokenError, description="Malformed request, unsupported grant type or invalid scope."),
            401: ResponseSpec(TokenError, description="Unknown, revoked or wrongly authenticated client."),
            429: ResponseSpec(TokenError, description=(
                "Too many failed authentications for this client id or from this address; retry after "
                "the Retry-After header's seconds.")),
        },
    )
    async def token(
        request: Request[Any, Any, Any],
        data: Annotated[TokenRequest, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[TokenResponse]:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != RequestEncodingType.URL_ENCODED:
            raise _error("invalid_request", "The body must be application/x-www-form-urlencoded.", 400,
                         dict(_NO_STORE))
        if not data.grant_type:
            raise _error("invalid_request", "Missing grant_type.", 400, dict(_NO_STORE))
        basic_client = _basic_client_id(request.headers.get("authorization"))
        if basic_client is not None and data.client_secret is not None:
            # RFC 6749 §2.3: a client MUST NOT use more than one authentication method in a request.
            raise _error("invalid_request", "The client authenticated two ways at once (HTTP Basic and "
                         "client_secret in the body); use one.", 400, dict(_NO_STORE))
        client_id = basic_client or data.client_id or ""
        throttle = oauth.throttle
        address = ""
        if throttle is not None:
            address = throttle.address(request.client.host if request.client else None,
                                       request.headers.get("x-forwarded-for"))
            wait = await throttle.reserve("token", client_id, address)
            if wait is not None:
                raise _error("temporarily_unavailable", f"Too many failed authentications; retry in {wait} s.",
                             429, {**_NO_STORE, "Retry-After": str(wait)})
        form = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        http_request = TokenHttpRequest(request.method, request.headers, form)
        failed_authentication = False
        try:
            result = await anyio.to_thread.run_sync(oauth.server.token_response, http_request)
            failed_authentication = result.status >= 400 and result.body.get("error") == "invalid_client"
        finally:
            if throttle is not None and not failed_authentication:  # only a failed authentication stays counted
                await throttle.release("token", client_id, address)
        headers = {k: v for k, v in result.headers if k.lower() != "content-type"} | _NO_STORE
        body = result.body
        if result.status >= 400:
            error = str(body.get("error", "invalid_request"))
            status = result.status
            if error == "invalid_client":
                # RFC 6749 §5.2: 401 with a challenge for the scheme the client can use.
                status = 401
                headers["WWW-Authenticate"] = f'Basic realm="{oauth.realm}"'
            raise _error(error, body.get("error_description"), status, headers)
        return Response(msgspec.convert(body, TokenResponse), status_code=200, headers=headers)

    @get("/.well-known/jwks.json", operation_id="gateway.getJwks", summary="Public keys that sign access tokens",
         tags=["OAuth2"], cache_control=None)
    async def jwks() -> Response[Jwks]:
        keys = await anyio.to_thread.run_sync(oauth.keys.jwks)
        # Short cache: resource servers pick up a rotation within a minute.
        return Response(msgspec.convert(keys, Jwks), headers={"Cache-Control": "public, max-age=60"})

    @get("/.well-known/oauth-authorization-server", operation_id="gateway.getAuthorizationServerMetadata",
         summary="Authorization server metadata (RFC 8414)", tags=["OAuth2"])
    async def metadata() -> AuthorizationServerMetadata:
        return oauth.metadata()

    return [token, jwks, metadata]
