"""The benchmark's Python peer: what a Python team would write instead of the gateway, same tokens and checks.

FastAPI + pydantic for the body, PyJWT (ES256, the gateway's published JWKS, issuer, audience,
expiry) and a scope check in a dependency, slowapi on Redis for the plan's per-second and
per-minute limits keyed by the token's client, a body-size and content-type check, and a
correlation id plus one JSON access-log line per request in an `@app.middleware("http")`.
The signature is checked on every request — PyJWT's ordinary use; the gateway remembers a
validated token for up to 60 s (policies/auth.py), which the results say beside the figures.

Lives in its own dependency group (`bench-peer` in pyproject.toml), never a runtime
dependency; `make bench-gateway` installs it. Configured by the runner through PEER_* variables.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import jwt
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded

__all__ = ["peer_app"]

ISSUER = os.environ.get("PEER_ISSUER", "")
AUDIENCE = os.environ.get("PEER_AUDIENCE", "")
SCOPE = os.environ.get("PEER_SCOPE", "system.crm:write")
LIMITS = os.environ.get("PEER_LIMITS", "10000000/second;100000000/minute")
MAX_BODY = 1_048_576
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")

access = logging.getLogger("peer.access")
access.addHandler(logging.StreamHandler(sys.stderr))
access.setLevel(logging.INFO)
access.propagate = False


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: str
    quantity: int


jwks = jwt.PyJWKClient(os.environ.get("PEER_JWKS_URL", "http://127.0.0.1:18082/.well-known/jwks.json"))


def principal(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        raise HTTPException(401, "A bearer access token is required.", headers={"WWW-Authenticate": "Bearer"})
    token = header[7:].strip()
    try:
        key = jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["ES256"], audience=AUDIENCE or None, issuer=ISSUER or None,
                            leeway=30, options={"require": ["exp", "iat", "sub"]})
    except jwt.PyJWTError as exc:
        raise HTTPException(401, f"Invalid token: {exc}", headers={"WWW-Authenticate": "Bearer"}) from exc
    if SCOPE not in str(claims.get("scope", "")).split():
        raise HTTPException(403, f"The access token lacks the scope(s): {SCOPE}.")
    client = str(claims.get("client_id") or claims["sub"])
    request.state.client_id = client
    return client


def consumer(request: Request) -> str:
    return str(getattr(request.state, "client_id", "anonymous"))


limiter = Limiter(key_func=consumer, storage_uri=os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0"),
                  key_prefix=os.environ.get("PEER_REDIS_PREFIX", "peer"), headers_enabled=False)
peer_app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
peer_app.state.limiter = limiter
peer_app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]


@peer_app.middleware("http")
async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    cid = request.headers.get("x-correlation-id", "")
    if not _SAFE_ID.match(cid):
        cid = str(uuid.uuid4())
    started = time.perf_counter()
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        response: Response = Response(status_code=413)
    elif request.method == "POST" and not request.headers.get("content-type", "").startswith("application/json"):
        response = Response(status_code=415)
    else:
        response = await call_next(request)
    response.headers["x-correlation-id"] = cid
    access.info(json.dumps({"event": "access", "method": request.method, "path": request.url.path,
                            "status": response.status_code, "correlation_id": cid,
                            "duration_ms": round((time.perf_counter() - started) * 1000, 3)}))
    return response


@peer_app.post("/bench/v1/orders")
@limiter.limit(LIMITS)
async def echo_order(request: Request, order: Order, client: str = Depends(principal)) -> Order:
    return order
