"""POST /oauth2/token, the JWKS and the RFC 8414 metadata, as an OAuth2 client sees them."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from litestar.testing import AsyncTestClient

from gateway.oauth import OAuth
from tests.security.oauth_kit import build_oauth, engine_for, oauth_app

SCOPES = ["crm.accounts:read", "crm.accounts:write", "erp.invoices:read"]


@pytest.fixture
def oauth(tmp_path: Path) -> Iterator[OAuth]:
    with engine_for("sqlite", tmp_path) as engine:
        yield build_oauth(engine, tmp_path, token_ttl=300)


@pytest.fixture
async def client(oauth: OAuth) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async with AsyncTestClient(app=oauth_app(oauth)) as c:
        yield c


@pytest.fixture
def creds(oauth: OAuth) -> tuple[str, str]:
    return oauth.clients.create("Billing app", SCOPES)


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def jwks_of(client: AsyncTestClient) -> KeySet:  # type: ignore[type-arg]
    return KeySet.import_key_set((await client.get("/.well-known/jwks.json")).json())


class TestClientAuthentication:
    async def test_basic_auth_issues_an_rfc9068_token(self, client: AsyncTestClient,  # type: ignore[type-arg]
                                                      creds: tuple[str, str]) -> None:
        response = await client.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic(*creds))
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 300
        assert body["scope"] == " ".join(SCOPES)
        token = jwt.decode(body["access_token"], await jwks_of(client), algorithms=["ES256"])
        assert token.header["typ"] == "at+jwt"
        assert token.header["alg"] == "ES256"
        assert token.header["kid"]
        claims = token.claims
        assert claims["iss"] == "http://127.0.0.1:8000"
        assert claims["aud"] == "psconnect"
        assert claims["sub"] == claims["client_id"] == creds[0]
        assert claims["exp"] - claims["iat"] == 300
        assert claims["nbf"] <= time.time()
        assert claims["jti"]
        assert "legal_entities" not in claims

    async def test_post_auth_issues_a_token(self, client: AsyncTestClient,  # type: ignore[type-arg]
                                            creds: tuple[str, str]) -> None:
        response = await client.post("/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": creds[0], "client_secret": creds[1]})
        assert response.status_code == 200, response.text
        assert response.json()["access_token"].count(".") == 2

    @pytest.mark.parametrize("how", ["basic", "post"])
    async def test_wrong_secret_is_invalid_client(self, client: AsyncTestClient,  # type: ignore[type-arg]
                                                  creds: tuple[str, str], how: str) -> None:
        response = await self._token(client, creds[0], "not-the-secret", how)
        self._assert_invalid_client(response)

    @pytest.mark.parametrize("how", ["basic", "post"])
    async def test_unknown_client_is_invalid_client(self, client: AsyncTestClient,  # type: ignore[type-arg]
                                                    how: str) -> None:
        self._assert_invalid_client(await self._token(client, "nobody", "whatever", how))

    async def test_revoked_client_is_invalid_client(self, client: AsyncTestClient,  # type: ignore[type-arg]
                                                    oauth: OAuth, creds: tuple[str, str]) -> None:
        oauth.clients.revoke(creds[0])
        self._assert_invalid_client(await self._token(client, *creds, "basic"))

    async def test_no_credentials_is_invalid_client(self, client: AsyncTestClient) -> None:  # type: ignore[type-arg]
        self._assert_invalid_client(await client.post("/oauth2/token", data={"grant_type": "client_credentials"}))

    @staticmethod
    async def _token(client: AsyncTestClient, cid: str, secret: str, how: str):  # type: ignore[no-untyped-def,type-arg]
        if how == "basic":
            return await client.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                     headers=basic(cid, secret))
        return await client.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": cid,
                                                        "client_secret": secret})

    @staticmethod
    def _assert_invalid_client(response) -> None:  # type: ignore[no-untyped-def]
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Basic")
        body = response.json()
        assert body["error"] == "invalid_client"
        assert body["status"] == 401
        assert body["type"].startswith("https://psconnect.dev/problems/")
        assert body["title"]
        assert "access_token" not in body


class TestGrantAndScope:
    async def test_unsupported_grant_type(self, client: AsyncTestClient,  # type: ignore[type-arg]
                                          creds: tuple[str, str]) -> None:
        response = await client.post("/oauth2/token", data={"grant_type": "password", "username": "u",
                                                            "password": "p"}, headers=basic(*creds))
        assert response.status_code == 400
        assert response.json()["error"] == "unsupported_grant_type"
        assert response.json()["status"] == 400

    async def test_missing_grant_type(self, client: AsyncTestClient,  # type: ignore[type-arg]
                                      creds: tuple[str, str]) -> None:
        response = await client.post("/oauth2/token", data={"scope": "crm.accounts:read"}, headers=basic(*creds))
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"

    async def test_repeated_parameter_is_invalid_request(self, client: AsyncTestClient,  # type: ignore[type-arg]
                                                         creds: tuple[str, str]) -> None:
        response = await client.post(
            "/oauth2/token", content="grant_type=client_credentials&scope=a&scope=b",
            headers={"Content-Type": "application/x-www-form-urlencoded", **basic(*creds)})
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"

    async def test_json_body_is_invalid_request(self, client: AsyncTestClient,  # type: ignore[type-arg]
                                                creds: tuple[str, str]) -> None:
        response = await client.post("/oauth2/token", json={"grant_type": "client_credentials"},
                                     headers=basic(*creds))
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"

    async def test_requested_scope_narrows_the_token(self, client: AsyncTestClient,  # type: ignore[type-arg]
                                                     creds: tuple[str, str]) -> None:
        response = await client.post("/oauth2/token", data={"grant_type": "client_credentials",
                                                            "scope": "crm.accounts:read"}, headers=basic(*creds))
        assert response.status_code == 200
        assert response.json()["scope"] == "crm.accounts:read"
        claims = jwt.decode(response.json()["access_token"], await jwks_of(client), algorithms=["ES256"]).claims
        assert claims["scope"] == "crm.accounts:read"

    async def test_scope_beyond_the_clients_grant_is_invalid_scope(
            self, client: AsyncTestClient, creds: tuple[str, str]) -> None:  # type: ignore[type-arg]
        response = await client.post("/oauth2/token", data={
            "grant_type": "client_credentials", "scope": "crm.accounts:read erp.journals:write"},
            headers=basic(*creds))
        assert response.status_code == 400
        body = response.json()
        assert body["error"] == "invalid_scope"
        assert "erp.journals:write" in body["error_description"]

    async def test_restricted_client_gets_legal_entities_claim(
            self, client: AsyncTestClient, oauth: OAuth) -> None:  # type: ignore[type-arg]
        cid, secret = oauth.clients.create("UK only", ["erp.invoices:read"], legal_entities=["LE-UK01"])
        response = await client.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                     headers=basic(cid, secret))
        claims = jwt.decode(response.json()["access_token"], await jwks_of(client), algorithms=["ES256"]).claims
        assert claims["legal_entities"] == ["LE-UK01"]
        principal = await oauth.validator.validate(response.json()["access_token"])
        assert principal.legal_entities == frozenset({"LE-UK01"})


class TestDiscovery:
    async def test_jwks_lists_the_signing_key_without_private_parts(
            self, client: AsyncTestClient, creds: tuple[str, str]) -> None:  # type: ignore[type-arg]
        token = (await client.post("/oauth2/token", data={"grant_type": "client_credentials"},
                                   headers=basic(*creds))).json()["access_token"]
        kid = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"]
        keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
        assert [k["kid"] for k in keys] == [kid]
        assert keys[0]["kty"] == "EC"
        assert keys[0]["crv"] == "P-256"
        assert keys[0]["alg"] == "ES256"
        assert "d" not in keys[0]

    async def test_metadata_describes_the_token_endpoint(self, client: AsyncTestClient) -> None:  # type: ignore[type-arg]
        meta = (await client.get("/.well-known/oauth-authorization-server")).json()
        assert meta["issuer"] == "http://127.0.0.1:8000"
        assert meta["token_endpoint"] == "http://127.0.0.1:8000/oauth2/token"
        assert meta["jwks_uri"] == "http://127.0.0.1:8000/.well-known/jwks.json"
        assert meta["grant_types_supported"] == ["client_credentials"]
        assert set(meta["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post"}

    async def test_openapi_documents_token_errors(self, oauth: OAuth) -> None:
        schema = oauth_app(oauth).openapi_schema.to_schema()
        responses = schema["paths"]["/oauth2/token"]["post"]["responses"]
        assert {"200", "400", "401"} <= set(responses)
        body = schema["paths"]["/oauth2/token"]["post"]["requestBody"]["content"]
        assert "application/x-www-form-urlencoded" in body


class TestServiceToken:
    async def test_service_token_validates_like_an_endpoint_token(self, oauth: OAuth) -> None:
        oauth.clients.ensure("psconnect-internal", "Service identity", ["erp.invoices:read", "psa.time:read"], "s")
        token = oauth.issue_service_token("psconnect-internal", ["erp.invoices:read"])
        principal = await oauth.validator.validate(token)
        assert principal.client_id == "psconnect-internal"
        assert principal.scopes == frozenset({"erp.invoices:read"})

    def test_service_token_refuses_unknown_clients_and_extra_scopes(self, oauth: OAuth) -> None:
        oauth.clients.ensure("svc", "Service identity", ["erp.invoices:read"], "s")
        with pytest.raises(PermissionError):
            oauth.issue_service_token("svc", ["erp.journals:write"])
        with pytest.raises(LookupError):
            oauth.issue_service_token("nobody", [])


async def test_token_throughput(client: AsyncTestClient, creds: tuple[str, str]) -> None:  # type: ignore[type-arg]
    """Not a pass/fail bar: prints tokens/s through the endpoint (in-process, sequential)."""
    headers, form = basic(*creds), {"grant_type": "client_credentials"}
    await client.post("/oauth2/token", data=form, headers=headers)
    n, start = 200, time.perf_counter()
    for _ in range(n):
        assert (await client.post("/oauth2/token", data=form, headers=headers)).status_code == 200
    rate = n / (time.perf_counter() - start)
    print(f"\ntoken endpoint: {rate:.0f} tokens/s (sequential, in-process, SQLite)")
