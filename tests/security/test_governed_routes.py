"""Every governed route of the real gateway refuses every bad token before its handler runs.

Routes are enumerated from the assembled app, so a route added later is covered
without touching this file. Each attack token differs from a working token in one
respect only; the control case proves the forged tokens are otherwise accepted.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from policies.bindings import required_scopes
from tests.security.oauth_kit import b64, forge, sign
from tests.stack import ALL_SCOPES, Stack, running_stack

ATTACKS = ["missing", "expired", "wrong_audience", "wrong_issuer", "unknown_kid", "alg_none", "hs256_public_key",
           "tampered_signature", "not_yet_valid", "wrong_typ", "missing_scope"]




@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as s:
        yield s


def governed_routes(stack: Stack) -> list[tuple[str, str, tuple[str, ...]]]:
    out = []
    for route in stack.gateway.litestar.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            api = handler.opt.get("api")
            if not api or not isinstance(handler, HTTPRouteHandler):
                continue
            for method in sorted(handler.http_methods - {"HEAD", "OPTIONS"}):
                path = re.sub(r"\{\w+:\w+\}", "x-1", route.path)
                op = handler.operation_id if isinstance(handler.operation_id, str) else handler.handler_name
                out.append((method, path, required_scopes(stack.gateway.bindings, api, op, method)))
    return out


def token_for(stack: Stack, attack: str, needed: tuple[str, ...]) -> str | None:
    settings = stack.gateway.settings
    key = stack.gateway.oauth.keys.active()
    now = int(time.time())
    header: dict[str, Any] = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}
    claims: dict[str, Any] = {"iss": settings.issuer, "aud": settings.audience, "sub": stack.client_id,
                              "client_id": stack.client_id, "scope": " ".join(ALL_SCOPES), "iat": now, "nbf": now,
                              "exp": now + 300, "jti": uuid.uuid4().hex}
    match attack:
        case "missing":
            return None
        case "valid":
            pass
        case "expired":
            claims.update(iat=now - 7200, nbf=now - 7200, exp=now - 3600)
        case "wrong_audience":
            claims["aud"] = "someone-else"
        case "wrong_issuer":
            claims["iss"] = "https://idp.attacker.example"
        case "not_yet_valid":
            claims.update(nbf=now + 3600, iat=now + 3600, exp=now + 7200)
        case "wrong_typ":
            header["typ"] = "JWT"
        case "missing_scope":
            claims["scope"] = " ".join(s for s in ALL_SCOPES if s not in needed)
        case "unknown_kid":
            return sign({**header, "kid": "kid-nobody-issued"}, claims, ECKey.generate_key("P-256"))
        case "alg_none":
            return forge({**header, "alg": "none"}, claims)
        case "hs256_public_key":
            # The classic confusion attack: the verifier's public key used as an HMAC secret.
            signing_input = f"{b64({**header, 'alg': 'HS256'})}.{b64(claims)}"
            mac = hmac.new(key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{b64(mac)}"
        case "tampered_signature":
            good = sign(header, claims, key)
            head, body, sig = good.split(".")
            return f"{head}.{body}.{sig[:-4]}{'AAAA' if not sig.endswith('AAAA') else 'BBBB'}"
    return sign(header, claims, key)


async def test_forged_tokens_are_otherwise_valid(stack: Stack) -> None:
    """Control: a token built the same way, without the defect, is accepted."""
    token = token_for(stack, "valid", ())
    answer = await stack.http.get("/system/crm/v1/accounts", params={"limit": 1},
                                  headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("attack", ATTACKS)
async def test_every_governed_route_refuses(stack: Stack, attack: str) -> None:
    routes = governed_routes(stack)
    assert len(routes) >= 20  # crm, erp, psa and provisioning operations
    failures = []
    bare = httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.gateway.app),  # type: ignore[arg-type]
                             base_url="http://testserver")

    async def call(method: str, path: str, needed: tuple[str, ...]) -> httpx.Response:
        token = token_for(stack, attack, needed)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await bare.request(method, path, headers={**headers, "Idempotency-Key": "sec-test-key"},
                                  json={} if method in ("POST", "PUT", "PATCH") else None)

    # All at once, as a flood of forged tokens would come: an unknown kid waits for a paced key reload, which
    # concurrent misses share (one after another, each waited its own: 48 s of the suite).
    answers = await asyncio.gather(*(call(*route) for route in routes))
    for (method, path, _), answer in zip(routes, answers, strict=True):
        expected = 403 if attack == "missing_scope" else 401
        problem = answer.headers.get("content-type", "").startswith("application/problem+json")
        challenge = answer.headers.get("www-authenticate", "")
        ok = answer.status_code == expected and problem and challenge.startswith("Bearer")
        if attack == "missing_scope":
            ok = ok and answer.json().get("code") == "insufficient_scope" and "insufficient_scope" in challenge
        if not ok:
            failures.append(f"{method} {path}: {answer.status_code} {challenge!r} {answer.text[:120]}")
    await bare.aclose()
    assert not failures, "\n".join(failures)


async def test_refused_calls_reach_no_vendor(stack: Stack) -> None:
    before = {d: sum(stack.sim(d).faults.seen.values()) for d in ("crm", "erp", "psa")}
    stack.http.headers.pop("Authorization")
    for method, path, _ in governed_routes(stack):
        await stack.http.request(method, path, json={} if method in ("POST", "PUT") else None)
    assert {d: sum(stack.sim(d).faults.seen.values()) for d in ("crm", "erp", "psa")} == before


