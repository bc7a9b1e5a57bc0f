"""CORS for the developer portal's try-it: configured here, enforced by Litestar's CORS middleware.

Litestar's middleware wraps the whole app, so a preflight (`OPTIONS` with `Origin`)
is answered before routing — before the policy chain and its authentication, as
browsers require (a preflight never carries the bearer token). No origin is allowed
unless configured: the portal served by the gateway itself is same-origin.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.config.cors import CORSConfig
from msgspec import Meta

__all__ = ["CorsConfig", "litestar_cors"]

Origin = Annotated[str, Meta(pattern=r"^(\*|https?://[A-Za-z0-9.\-]+(:\d{1,5})?)$")]


class CorsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    allow_origins: Annotated[tuple[Origin, ...], Meta(description=(
        "Origins whose pages may call the APIs (e.g. the portal's URL); empty disables CORS."))] = ()
    allow_methods: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE")
    allow_headers: Annotated[tuple[str, ...], Meta(description="Request headers a browser may send.")] = (
        "Authorization", "Content-Type", "Idempotency-Key", "X-Correlation-ID", "traceparent")
    expose_headers: Annotated[tuple[str, ...], Meta(description="Response headers scripts may read.")] = (
        "Location", "Retry-After", "RateLimit", "RateLimit-Policy", "X-Correlation-ID", "traceparent",
        "Idempotent-Replayed", "Deprecation", "Sunset", "Link")
    max_age: Annotated[int, Meta(ge=0, le=86400, description="Seconds a browser may cache a preflight.")] = 600


def litestar_cors(config: CorsConfig, extra_origins: tuple[str, ...] = ()) -> CORSConfig | None:
    """Litestar's CORSConfig for the app, or None when no origin is allowed."""
    origins = [*config.allow_origins, *extra_origins]
    if not origins:
        return None
    # Bearer tokens travel in the Authorization header, not cookies: credentials stay off.
    return CORSConfig(allow_origins=origins, allow_methods=list(config.allow_methods),  # type: ignore[arg-type]
                      allow_headers=list(config.allow_headers), expose_headers=list(config.expose_headers),
                      allow_credentials=False, max_age=config.max_age)
