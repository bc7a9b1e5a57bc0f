"""The token security battery: what an attacker or a misconfigured client sends, and what they get back.

Each case goes through the Authentication policy in front of a route (problem+json
with RFC 6750 challenges, as the gateway answers) or straight to the validator.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey, Key, RSAKey
from litestar import Litestar, Request, get
from litestar.testing import AsyncTestClient

from contracts.problems import ProblemError
from gateway.errors import EXCEPTION_HANDLERS
from gateway.oauth import OAuth
from gateway.settings import ExternalIssuer
from policies.auth import AuthConfig, Authentication
from policies.base import Principal, RequestContext, RouteInfo
from tests.security.oauth_kit import Clock, b64, build_oauth, engine_for, forge, sign

ISSUER = "http://127.0.0.1:8000"
IDP = "https://idp.example.com/"
IDP_JWKS = "https://idp.example.com/.well-known/jwks.json"
NEEDED = ("crm.accounts:read",)


class Idp:
    """A fake external identity provider: an RSA key and a JWKS endpoint that counts fetches."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, {"alg": "RS256", "use": "sig"}, auto_kid=True)
        self.fetches = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == IDP_JWKS
        self.fetches += 1
        return httpx.Response(200, json={"keys": [self.key.as_dict(private=False)]})

    def token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims = {"iss": IDP, "sub": "user-42", "aud": "api://psconnect", "exp": now + 300, "iat": now,
                  "azp": "portal-spa", "scp": ["crm.accounts:read"]} | overrides
        return sign({"alg": "RS256", "typ": "at+jwt", "kid": self.key.kid}, claims, self.key)


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time())


@pytest.fixture
def idp() -> Idp:
    return Idp()


@pytest.fixture
async def oauth(tmp_path: Path, clock: Clock, idp: Idp) -> AsyncIterator[OAuth]:
    with engine_for("sqlite", tmp_path) as engine:
        async with httpx.AsyncClient(transport=httpx.MockTransport(idp.handler)) as http:
            external = (ExternalIssuer(issuer=IDP, jwks_uri=IDP_JWKS, audience="api://psconnect"),)
            oauth = build_oauth(engine, tmp_path, external=external, http=http, clock=clock, jwks_cooldown=60)
            oauth.clients.ensure("app", "App", ["crm.accounts:read", "crm.accounts:write"], "secret")
            yield oauth


def probe_app(policy: Authentication) -> Litestar:
    """A governed route with the Authentication policy in front, rendering errors as the gateway does."""

    @get("/v1/accounts")
    async def accounts(request: Request[Any, Any, Any]) -> dict[str, Any]:
        route = RouteInfo(api="crm", operation_id="listAccounts", method="GET", path="/v1/accounts", scopes=NEEDED)
        ctx = RequestContext(request, route, "corr-1")
        await policy.on_request(ctx)
        assert ctx.principal is not None
        return {"sub": ctx.principal.subject, "scopes": sorted(ctx.principal.scopes)}

    return Litestar([accounts], exception_handlers=EXCEPTION_HANDLERS)


@pytest.fixture
async def api(oauth: OAuth) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async with AsyncTestClient(app=probe_app(Authentication(AuthConfig(), oauth.validator))) as client:
        yield client


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "sub": "app", "client_id": "app", "aud": "psconnect", "exp": now + 300, "iat": now,
            "nbf": now, "jti": "j-1", "scope": "crm.accounts:read"} | overrides


def signed(oauth: OAuth, header: dict[str, Any] | None = None, key: Key | None = None, **claim_overrides: Any) -> str:
    key = key or oauth.keys.active()
    hdr = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid} | (header or {})
    return sign(hdr, claims(**claim_overrides), key)


async def call(api: AsyncTestClient, token: str | None, scheme: str = "Bearer") -> httpx.Response:  # type: ignore[type-arg]
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    response: httpx.Response = await api.get("/v1/accounts", headers=headers)
    return response


def assert_invalid_token(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="psconnect", error="invalid_token"')
    assert reason in challenge
    assert response.json()["code"] == "invalid_token"


class TestPolicyAdmits:
    async def test_valid_token_reaches_the_route(self, api: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        response = await call(api, oauth.issue_service_token("app", ["crm.accounts:read"]))
        assert response.status_code == 200
        assert response.json() == {"sub": "app", "scopes": ["crm.accounts:read"]}

    async def test_scheme_is_case_insensitive(self, api: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        response = await call(api, oauth.issue_service_token("app", ["crm.accounts:read"]), scheme="bearer")
        assert response.status_code == 200


class TestPolicyRejects:
    async def test_missing_token(self, api: AsyncTestClient) -> None:  # type: ignore[type-arg]
        response = await call(api, None)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="psconnect"'
        assert response.json()["code"] == "missing_token"

    async def test_non_bearer_scheme(self, api: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        response = await call(api, "YXBwOnNlY3JldA==", scheme="Basic")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="psconnect"'

    async def test_garbage_token(self, api: AsyncTestClient) -> None:  # type: ignore[type-arg]
        assert_invalid_token(await call(api, "not.a.jwt"), "malformed")

    async def test_expired(self, api: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        now = int(time.time())
        assert_invalid_token(await call(api, signed(oauth, exp=now - 31, iat=now - 331, nbf=now - 331)), "expired")

    async def test_expired_within_leeway_is_accepted(self, api: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        now = int(time.time())
        assert (await call(api, signed(oauth, exp=now - 10, iat=now - 310))).status_code == 200

    async def test_wrong_audience(self, api: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        assert_invalid_token(await call(api, signed(oauth, aud="some-other-api")), "audience")

    async def test_wrong_issuer(self, api: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        assert_invalid_token(await call(api, signed(oauth, iss="https://evil.example")), "issuer")

    async def test_unknown_kid(self, api: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        stranger = ECKey.generate_key("P-256", {"alg": "ES256"}, auto_kid=True)
        assert_invalid_token(await call(api, signed(oauth, key=stranger)), "unknown signing key")

    async def test_missing_kid(self, api: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        key = oauth.keys.active()
        token = sign({"alg": "ES256", "typ": "at+jwt"}, claims(), key)
        assert_invalid_token(await call(api, token), "key id")

    async def test_alg_none(self, api: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        token = forge({"alg": "none", "typ": "at+jwt", "kid": oauth.keys.active().kid}, claims())
        assert_invalid_token(await call(api, token), "algorithm")

    async def test_hs256_with_the_public_key_as_secret(self, api: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        key = oauth.keys.active()
        assert isinstance(key, ECKey)
        public_pem = key.as_pem(private=False)
        header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
        signing_input = f"{b64(header)}.{b64(claims())}".encode()
        mac = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
        token = signing_input.decode() + "." + b64(mac)
        assert_invalid_token(await call(api, token), "algorithm")

    async def test_tampered_payload(self, api: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        token = oauth.issue_service_token("app", ["crm.accounts:read"])
        header, payload, signature = token.split(".")
        body = json.loads(base64.urlsafe_b64decode(payload + "=="))
        body["scope"] = "crm.accounts:read crm.accounts:write erp.journals:write"
        assert_invalid_token(await call(api, f"{header}.{b64(body)}.{signature}"), "bad signature")

    async def test_tampered_signature(self, api: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        token = oauth.issue_service_token("app", ["crm.accounts:read"])
        header, payload, signature = token.split(".")
        raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
        raw[5] ^= 0x01
        assert_invalid_token(await call(api, f"{header}.{payload}.{b64(bytes(raw))}"), "bad signature")

    async def test_nbf_in_the_future(self, api: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        assert_invalid_token(await call(api, signed(oauth, nbf=int(time.time()) + 120)), "not yet valid")

    async def test_plain_jwt_typ_is_not_an_access_token(self, api: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        assert_invalid_token(await call(api, signed(oauth, header={"typ": "JWT"})), "typ")

    async def test_missing_required_claim(self, api: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        assert_invalid_token(await call(api, signed(oauth, jti=None)), "missing claim jti")

    async def test_missing_scope_is_403(self, api: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        oauth.clients.ensure("writer", "Writer", ["crm.accounts:write"], "s")
        response = await call(api, oauth.issue_service_token("writer", ["crm.accounts:write"]))
        assert response.status_code == 403
        assert response.json()["code"] == "insufficient_scope"
        assert response.headers["www-authenticate"] == (
            'Bearer realm="psconnect", error="insufficient_scope", scope="crm.accounts:read"')


class TestExternalIdp:
    async def test_idp_token_is_accepted_with_scp_list(self, api: AsyncTestClient, idp: Idp) -> None:  # type: ignore[type-arg]
        response = await call(api, idp.token())
        assert response.status_code == 200, response.text
        assert response.json() == {"sub": "user-42", "scopes": ["crm.accounts:read"]}

    async def test_idp_principal(self, oauth: OAuth, idp: Idp) -> None:
        principal = await oauth.validator.validate(idp.token(scp=None, scope="crm.accounts:read crm.x:write"))
        assert principal.issuer == IDP
        assert principal.client_id == "portal-spa"
        assert principal.scopes == frozenset({"crm.accounts:read", "crm.x:write"})
        assert principal.legal_entities is None

    async def test_idp_token_for_another_audience(self, oauth: OAuth, idp: Idp) -> None:
        with pytest.raises(ProblemError, match="audience"):
            await oauth.validator.validate(idp.token(aud="psconnect-other"))

    async def test_idp_key_cannot_vouch_for_our_issuer(self, oauth: OAuth, idp: Idp) -> None:
        await oauth.validator.validate(idp.token())  # the IdP's key is cached now
        with pytest.raises(ProblemError, match="unknown signing key"):
            await oauth.validator.validate(idp.token(iss=ISSUER, aud="psconnect", client_id="app", jti="x"))

    async def test_our_key_cannot_vouch_for_the_idp(self, oauth: OAuth) -> None:
        with pytest.raises(ProblemError, match="unknown signing key"):
            await oauth.validator.validate(signed(oauth, iss=IDP, aud="api://psconnect"))

    async def test_unknown_kid_refetches_once_then_cools_down(self, oauth: OAuth, idp: Idp, clock: Clock) -> None:
        await oauth.validator.validate(idp.token())
        assert idp.fetches == 1
        await oauth.validator.validate(idp.token())
        assert idp.fetches == 1  # cached

        rogue = RSAKey.generate_key(2048, {"alg": "RS256"}, auto_kid=True)
        now = int(time.time())
        bad = sign({"alg": "RS256", "typ": "at+jwt", "kid": rogue.kid},
                   {"iss": IDP, "sub": "x", "aud": "api://psconnect", "exp": now + 60, "iat": now}, rogue)
        clock.advance(61)  # past the cooldown of the first fetch
        results = await asyncio.gather(*(oauth.validator.validate(bad) for _ in range(20)), return_exceptions=True)
        assert all(isinstance(r, ProblemError) for r in results)
        assert idp.fetches == 2  # twenty unknown kids, one refetch
        for _ in range(5):
            with pytest.raises(ProblemError):
                await oauth.validator.validate(bad)
        assert idp.fetches == 2  # cooldown
        clock.advance(61)
        with pytest.raises(ProblemError):
            await oauth.validator.validate(bad)
        assert idp.fetches == 3

    async def test_idp_key_rotation_is_picked_up(self, oauth: OAuth, idp: Idp, clock: Clock) -> None:
        await oauth.validator.validate(idp.token())
        idp.key = RSAKey.generate_key(2048, {"alg": "RS256", "use": "sig"}, auto_kid=True)
        clock.advance(61)
        assert (await oauth.validator.validate(idp.token())).subject == "user-42"
        assert idp.fetches == 2


@pytest.mark.parametrize("raw", [{"leeway": -1}, {"leeway": 301}, {"realm": 'a"b'}, {"unknown": 1}])
def test_auth_config_rejects_bad_values_at_load_time(raw: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(raw, AuthConfig)


@pytest.mark.parametrize(("leeway", "status"), [(0, 401), (120, 200)])
async def test_policy_leeway_applies(oauth: OAuth, leeway: int, status: int) -> None:
    now = int(time.time())
    token = signed(oauth, exp=now - 100, iat=now - 400)
    async with AsyncTestClient(app=probe_app(Authentication(AuthConfig(leeway=leeway), oauth.validator))) as client:
        assert (await call(client, token)).status_code == status


def test_external_issuers_need_an_http_client(tmp_path: Path) -> None:
    with engine_for("sqlite", tmp_path) as engine, pytest.raises(ValueError, match="AsyncClient"):
        build_oauth(engine, tmp_path, external=(ExternalIssuer(issuer=IDP, jwks_uri=IDP_JWKS),))


def test_issuer_must_be_https_or_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTHLIB_INSECURE_TRANSPORT", raising=False)
    from gateway.settings import load_settings

    settings = load_settings(env={}, home=str(tmp_path), public_url="http://gateway.internal")
    with engine_for("sqlite", tmp_path) as engine, pytest.raises(ValueError, match="https or loopback"):
        OAuth(settings, engine)


_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
_json = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
_header = st.fixed_dictionaries({"alg": st.sampled_from(["ES256", "RS256", "none", "HS256"]) | _json},
                                optional={"typ": st.sampled_from(["at+jwt", "JWT"]) | _json, "kid": _json,
                                          "crit": _json})
_claims = st.dictionaries(st.sampled_from(["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope",
                                           "scp", "legal_entities"]), _json) | _json


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=_header, body=_claims, signature=st.binary(max_size=80))
async def test_hostile_tokens_only_ever_yield_401(oauth: OAuth, header: Any, body: Any, signature: bytes) -> None:
    token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}.{b64(signature)}"
    with pytest.raises(ProblemError) as err:
        await oauth.validator.validate(token)
    assert err.value.problem.status == 401


class CountingValidator:
    """The real validator, counting how often the policy asks it."""

    def __init__(self, oauth: OAuth) -> None:
        self.inner, self.calls = oauth.validator, 0

    async def validate(self, token: str, *, leeway: int | None = None) -> Principal:
        self.calls += 1
        return await self.inner.validate(token, leeway=leeway)


class TestValidatedTokenCache:
    async def test_a_token_is_verified_once_and_a_tampered_copy_in_full(self, oauth: OAuth) -> None:
        validator = CountingValidator(oauth)
        async with AsyncTestClient(app=probe_app(Authentication(AuthConfig(), validator))) as client:
            token = signed(oauth)
            assert [(await call(client, token)).status_code for _ in range(3)] == [200, 200, 200]
            assert validator.calls == 1
            head, payload, signature = token.split(".")
            forged = ".".join([head, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")])
            assert_invalid_token(await call(client, forged), "bad signature")
            assert validator.calls == 2

    async def test_a_remembered_token_still_expires(self, oauth: OAuth, clock: Clock) -> None:
        validator = CountingValidator(oauth)
        async with AsyncTestClient(app=probe_app(Authentication(AuthConfig(leeway=0), validator))) as client:
            clock.now = time.time()  # the validator's clock and the policy's agree on "now"
            issued = int(clock.now)
            token = signed(oauth, iat=issued, nbf=issued, exp=issued + 2)
            assert (await call(client, token)).status_code == 200
            await asyncio.sleep(issued + 2.1 - time.time())
            clock.now = time.time()
            assert_invalid_token(await call(client, token), "token expired")
            assert validator.calls == 2  # not answered from the cache once expired

    async def test_the_cache_can_be_switched_off_and_is_bounded(self, oauth: OAuth) -> None:
        off = CountingValidator(oauth)
        async with AsyncTestClient(app=probe_app(Authentication(AuthConfig(verified_cache_seconds=0), off))) as c:
            token = signed(oauth)
            for _ in range(3):
                assert (await call(c, token)).status_code == 200
        assert off.calls == 3
        small = CountingValidator(oauth)
        async with AsyncTestClient(app=probe_app(Authentication(AuthConfig(verified_cache_size=2), small))) as c:
            first, second, third = (signed(oauth, jti=f"j-{i}") for i in range(3))
            for token in (first, second, third, third, second, first):
                assert (await call(c, token)).status_code == 200
        assert small.calls == 4  # `first` was forgotten when `third` came in; the others were remembered
