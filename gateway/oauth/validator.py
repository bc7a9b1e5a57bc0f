"""Access-token validation: our own RFC 9068 JWTs and those of trusted external IdPs.

Order of checks, cheapest and most hostile-input-proof first: shape, header
(`alg` allowlist — never `none` or HS*, so a public key can never serve as an
HMAC secret —, `typ` at+jwt, `kid`), issuer, then the key *of that issuer* (a
key published by one IdP never verifies another issuer's token), signature,
then time and audience claims with a small leeway.

Fast path: our own tokens are verified against the cached keys of `SigningKeys`
with no database access. An unknown kid triggers a reload when one could find it
(another worker created or rotated the key), paced by `SigningKeys.reload_gap`
and shared by concurrent misses (see gateway/oauth/keys.py); an external IdP's
JWKS is fetched through the injected `httpx.AsyncClient`, cached, and refetched
on an unknown kid at most once per `jwks_cooldown` seconds, so a flood of
forged kids cannot hammer the IdP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet

from contracts.problems import ProblemError
from gateway.oauth.keys import SigningKeys
from gateway.settings import ExternalIssuer
from policies.base import Principal

__all__ = ["ALLOWED_ALGS", "RemoteJwks", "TokenValidator", "invalid_token"]

log = logging.getLogger("psconnect.oauth")

ALLOWED_ALGS = frozenset({"ES256", "RS256", "PS256", "EdDSA"})
_TYPS = frozenset({"at+jwt", "application/at+jwt"})
_REALM = "psconnect"


def invalid_token(description: str) -> ProblemError:
    """The 401 every validation failure becomes (RFC 6750 §3.1 `invalid_token`)."""
    safe = description.replace('"', "'")
    return ProblemError(
        401, "unauthorized", "Unauthorized", f"Invalid access token: {description}.", code="invalid_token",
        headers={"WWW-Authenticate": f'Bearer realm="{_REALM}", error="invalid_token", error_description="{safe}"'},
    )


class RemoteJwks:
    """One external IdP's JWKS: fetched lazily, cached, refetched on unknown kid with a cooldown."""

    def __init__(self, jwks_uri: str, http: httpx.AsyncClient, *, cooldown: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.jwks_uri = jwks_uri
        self.http = http
        self.cooldown = cooldown
        self.clock = clock
        self.fetches = 0
        self._keys: KeySet | None = None
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    def _lookup(self, kid: str) -> Key | None:
        if self._keys is None:
            return None
        return next((k for k in self._keys.keys if k.kid == kid), None)

    async def key(self, kid: str) -> Key | None:
        found = self._lookup(kid)
        if found is not None:
            return found
        async with self._lock:  # concurrent misses share one fetch
            found = self._lookup(kid)
            if found is not None:
                return found
            if self._fetched_at is not None and self.clock() - self._fetched_at < self.cooldown:
                return None
            self._fetched_at = self.clock()
            self.fetches += 1
            try:
                response = await self.http.get(self.jwks_uri)
                response.raise_for_status()
                self._keys = KeySet.import_key_set(response.json())
            except (httpx.HTTPError, ValueError, JoseError) as exc:
                log.warning("JWKS fetch from %s failed: %s", self.jwks_uri, exc)
                return None
            return self._lookup(kid)


class TokenValidator:
    """Turns a bearer token into a `Principal` or raises a 401 `ProblemError`."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: SigningKeys,
        http: httpx.AsyncClient | None = None,
        external_issuers: Sequence[ExternalIssuer] = (),
        leeway: int = 30,
        jwks_cooldown: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.keys = keys
        self.leeway = leeway
        self.clock = clock
        self._external: dict[str, tuple[ExternalIssuer, RemoteJwks]] = {}
        if external_issuers and http is None:
            raise ValueError("external issuers need an httpx.AsyncClient to fetch their JWKS")
        for ext in external_issuers:
            assert http is not None
            self._external[ext.issuer] = (ext, RemoteJwks(ext.jwks_uri, http, cooldown=jwks_cooldown, clock=clock))

    def remote(self, issuer: str) -> RemoteJwks | None:
        entry = self._external.get(issuer)
        return entry[1] if entry else None

    async def _local_key(self, kid: str, issued_at: float | None) -> Key | None:
        key = self.keys.verification_key(kid)
        if key is not None:
            return key
        arrived = self.keys.monotonic()
        delay = self.keys.reload_delay(issued_at)
        if delay is None:
            return None
        if delay > 0:
            await asyncio.sleep(delay)  # paces reloads; a concurrent miss may bring the key meanwhile
            key = self.keys.verification_key(kid)
            if key is not None:
                return key
        # Every miss looks again after the reload, whichever request ran it (concurrent first calls).
        await asyncio.to_thread(self.keys.reload_unless_loaded_since, arrived)
        return self.keys.verification_key(kid)

    async def validate(self, token: str, *, leeway: int | None = None) -> Principal:
        leeway = self.leeway if leeway is None else leeway
        try:
            obj = jws.extract_compact(token.encode("ascii"))
            header = obj.headers()
            claims = json.loads(obj.payload)
        except (JoseError, ValueError, UnicodeError) as exc:
            raise invalid_token("malformed token") from exc
        if not isinstance(claims, dict):
            raise invalid_token("malformed claims")

        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGS:
            raise invalid_token("algorithm not allowed")
        if str(header.get("typ", "")).lower() not in _TYPS:
            raise invalid_token("not an access token (typ must be at+jwt)")
        if "crit" in header:
            raise invalid_token("unsupported critical header")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise invalid_token("missing key id")

        iss = claims.get("iss")
        if not isinstance(iss, str):
            raise invalid_token("missing issuer")
        audience = self.audience
        if iss == self.issuer:
            iat = claims.get("iat")
            key = await self._local_key(kid, iat if isinstance(iat, int | float) and not isinstance(iat, bool)
                                        else None)
        elif iss in self._external:
            ext, remote = self._external[iss]
            audience = ext.audience or self.audience
            key = await remote.key(kid)
        else:
            raise invalid_token("untrusted issuer")
        if key is None:
            raise invalid_token("unknown signing key")
        if key.get("alg") not in (None, alg):
            raise invalid_token("algorithm does not match the key")

        try:
            verified = jws.validate_compact(obj, key, algorithms=[alg])
        except (JoseError, ValueError) as exc:
            raise invalid_token("bad signature") from exc
        if not verified:  # joserfc reports a mismatch by returning False, not raising
            raise invalid_token("bad signature")

        return self._principal(claims, audience, leeway, local=iss == self.issuer)

    def _principal(self, claims: dict[str, Any], audience: str, leeway: int, *, local: bool) -> Principal:
        required = ("iss", "sub", "aud", "exp", "iat") + (("client_id", "jti") if local else ())
        missing = [c for c in required if claims.get(c) is None]
        if missing:
            raise invalid_token(f"missing claim {', '.join(missing)}")
        now = self.clock()
        exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf")
        for name, value in (("exp", exp), ("iat", iat), ("nbf", nbf)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise invalid_token(f"claim {name} is not a number")
        if exp <= now - leeway:
            raise invalid_token("token expired")
        if nbf is not None and nbf > now + leeway:
            raise invalid_token("token not yet valid")
        if iat > now + leeway:
            raise invalid_token("token issued in the future")
        aud = claims["aud"]
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if audience not in auds:
            raise invalid_token("wrong audience")
        sub = claims["sub"]
        if not isinstance(sub, str):
            raise invalid_token("claim sub is not a string")
        client_id = claims.get("client_id") or claims.get("azp") or sub
        return Principal(
            subject=sub,
            client_id=str(client_id),
            issuer=claims["iss"],
            scopes=_scopes(claims),
            legal_entities=_legal_entities(claims),
            token_id=str(claims["jti"]) if claims.get("jti") is not None else None,
            expires_at=int(exp),
        )


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, str):
        return frozenset(scp.split())
    if isinstance(scp, list):
        return frozenset(s for s in scp if isinstance(s, str))
    return frozenset()


def _legal_entities(claims: dict[str, Any]) -> frozenset[str] | None:
    value = claims.get("legal_entities")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_token("claim legal_entities is not a list of codes")
    return frozenset(value)
