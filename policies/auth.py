"""Authentication: a valid bearer access token, carrying every scope the route needs.

Runs early (order 1450, Kong's jwt priority) so later policies — rate limits per
consumer, legal-entity filters, audit — see `ctx.principal`. The validator is a
Protocol: policies never import the gateway; `gateway.oauth.TokenValidator`
satisfies it. Errors follow RFC 6750 §3: 401 with a `Bearer` challenge for a
missing or bad token, 403 `insufficient_scope` naming the scopes needed.

A token that validated is remembered for `verified_cache_seconds` (bounded, by its
exact text — a forged variant is another text and is validated in full): a client
sends one token for its whole lifetime, and the signature check (ES256, ~0.1 ms) is
most of what authentication costs per request. Expiry is still checked on every
request; the short re-validation period bounds how long a token stays accepted after
its issuer stops publishing its key (our own keys outlive their tokens by design).
"""

from __future__ import annotations

import re
import time
from typing import Annotated, ClassVar, Protocol

import msgspec
from msgspec import Meta

from contracts.problems import ProblemError
from policies.base import Policy, Principal, RequestContext
from policies.registry import PolicyFactory

__all__ = ["FACTORY", "AuthConfig", "Authentication", "TokenValidatorProtocol"]

# RFC 6750 §2.1: "Bearer" 1*SP b64token
_BEARER = re.compile(r"Bearer +([A-Za-z0-9\-._~+/]+=*)", re.IGNORECASE)


class TokenValidatorProtocol(Protocol):
    async def validate(self, token: str, *, leeway: int | None = None) -> Principal:
        """Return the caller or raise a 401 `ProblemError`."""
        ...


class AuthConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    leeway: Annotated[int, Meta(ge=0, le=300, description=(
        "Clock skew tolerated on token exp/nbf/iat, in seconds."))] = 30
    realm: Annotated[str, Meta(min_length=1, pattern=r'^[^"\\]+$', description=(
        "Realm named in the WWW-Authenticate challenge."))] = "psconnect"
    verified_cache_seconds: Annotated[int, Meta(ge=0, le=300, description=(
        "How long a validated token is accepted without checking its signature again (0: never)."))] = 60
    verified_cache_size: Annotated[int, Meta(ge=1, le=1_000_000, description=(
        "Most validated tokens remembered at once; the oldest is forgotten first."))] = 10_000


class Authentication(Policy[AuthConfig]):
    name: ClassVar[str] = "auth"
    order: ClassVar[int] = 1450

    def __init__(self, config: AuthConfig, validator: TokenValidatorProtocol) -> None:
        super().__init__(config)
        self.validator = validator
        self._verified: dict[str, tuple[Principal, float]] = {}
        """token -> (principal, time to validate again); insertion-ordered, so the first is the oldest."""

    async def _principal(self, token: str) -> Principal:
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None:
            principal, recheck_at = hit
            if now < recheck_at and (principal.expires_at is None or principal.expires_at > now - self.config.leeway):
                return principal
            del self._verified[token]
        principal = await self.validator.validate(token, leeway=self.config.leeway)
        if self.config.verified_cache_seconds:
            if len(self._verified) >= self.config.verified_cache_size:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = (principal, now + self.config.verified_cache_seconds)
        return principal

    async def on_request(self, ctx: RequestContext) -> None:
        header = ctx.request.headers.get("authorization")
        match = _BEARER.fullmatch(header.strip()) if header else None
        if match is None:
            detail = "A bearer access token is required." if not header else "The Authorization header is not Bearer."
            raise ProblemError(401, "unauthorized", "Unauthorized", detail, code="missing_token",
                               headers={"WWW-Authenticate": f'Bearer realm="{self.config.realm}"'})
        principal = await self._principal(match.group(1))
        ctx.principal = principal
        needed = ctx.route.scopes
        missing = [s for s in needed if s not in principal.scopes]
        if missing:
            raise ProblemError(
                403, "forbidden", "Forbidden", f"The access token lacks the scope(s): {' '.join(missing)}.",
                code="insufficient_scope",
                headers={"WWW-Authenticate": (f'Bearer realm="{self.config.realm}", error="insufficient_scope", '
                                              f'scope="{" ".join(needed)}"')},
            )


FACTORY = PolicyFactory(name="auth", shared=True,
                        build=lambda b: Authentication(b.bindings.auth, b.services.token_validator))
"""Registered in the entry-point group psconnect.policies; one instance (one token cache) for every API."""
