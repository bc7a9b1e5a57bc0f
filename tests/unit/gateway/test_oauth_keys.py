"""Signing-key rotation on SQLite and PostgreSQL: overlap, JWKS contents, automatic rotation, other workers."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from contracts.problems import ProblemError
from gateway.oauth import OAuth
from gateway.oauth.keys import SigningKeys
from gateway.oauth.server import OAuthServer
from gateway.oauth.validator import TokenValidator
from tests.security.oauth_kit import Clock, b64, build_oauth, engine_for

pytestmark = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time())


@pytest.fixture
def oauth(backend: str, tmp_path: Path, clock: Clock) -> Iterator[OAuth]:
    with engine_for(backend, tmp_path) as engine:
        oauth = build_oauth(engine, tmp_path, token_ttl=60, clock=clock)
        oauth.clients.ensure("app", "App", ["crm.accounts:read"], "secret")
        yield oauth


def kids(oauth: OAuth) -> list[str]:
    return [k["kid"] for k in oauth.keys.jwks()["keys"]]


async def test_token_signed_before_rotation_stays_valid_for_the_overlap(oauth: OAuth, clock: Clock) -> None:
    old_token = oauth.issue_service_token("app", ["crm.accounts:read"])
    old_kid = kids(oauth)[0]
    new_kid = oauth.keys.rotate()
    assert set(kids(oauth)) == {old_kid, new_kid}
    assert (await oauth.validator.validate(old_token)).client_id == "app"
    clock.advance(oauth.keys.refresh_interval + 1)
    new_token = oauth.issue_service_token("app", ["crm.accounts:read"])
    assert _kid(new_token) == new_kid
    assert (await oauth.validator.validate(new_token)).client_id == "app"
    assert (await oauth.validator.validate(old_token)).client_id == "app"

    clock.advance(oauth.keys.overlap - oauth.keys.refresh_interval)
    assert kids(oauth) == [new_kid]
    with pytest.raises(ProblemError) as err:
        # Validated with a leeway long enough that only the dropped key can be the reason.
        await oauth.validator.validate(old_token, leeway=10_000)
    assert err.value.problem.status == 401
    assert "unknown signing key" in (err.value.problem.detail or "")


async def test_overlap_covers_token_lifetime_and_leeway(oauth: OAuth) -> None:
    assert oauth.keys.overlap >= oauth.settings.token_ttl + oauth.validator.leeway


async def test_active_key_rotates_itself_when_older_than_the_rotation_period(oauth: OAuth, clock: Clock) -> None:
    first = kids(oauth)
    clock.advance(oauth.settings.key_rotation_days * 86400 + 1)
    second = kids(oauth)
    assert len(first) == 1
    assert len(second) == 2
    assert first[0] in second
    token = oauth.issue_service_token("app", [])
    assert (await oauth.validator.validate(token)).subject == "app"


async def test_a_rotation_by_another_worker_never_produces_a_rejected_token(oauth: OAuth, clock: Clock) -> None:
    # Worker A has cached the key set; worker B, sharing the database, rotates and keeps issuing.
    first = oauth.issue_service_token("app", [])
    await oauth.validator.validate(first)
    worker_b_keys = SigningKeys(oauth.engine, token_ttl=60, clock=clock)
    worker_b = OAuthServer(issuer=oauth.issuer, audience="psconnect", token_ttl=60, clients=oauth.clients,
                           keys=worker_b_keys, clock=clock)
    new_kid = worker_b_keys.rotate()

    just_after = worker_b.issue_service_token("app", [])
    assert _kid(just_after) == _kid(first)  # the new key is published but not signing yet
    assert (await oauth.validator.validate(just_after)).subject == "app"

    clock.advance(worker_b_keys.refresh_interval + 1)
    later = worker_b.issue_service_token("app", [])
    assert _kid(later) == new_kid
    assert (await oauth.validator.validate(later)).subject == "app"  # A reloads on the unknown kid


async def test_unknown_kid_reloads_at_most_once_per_refresh_interval(oauth: OAuth, clock: Clock) -> None:
    clock.advance(-oauth.keys.leeway - 60)
    token = oauth.issue_service_token("app", [])  # issued well before the cache is loaded below
    clock.advance(oauth.keys.leeway + 60)
    oauth.keys.active()  # loads the cache
    queries: list[str] = []
    sa.event.listen(oauth.engine, "before_cursor_execute", lambda *a: queries.append(a[2]))
    unknown = TokenValidator(issuer=oauth.issuer, audience="psconnect", keys=oauth.keys, clock=clock)
    for kid in ("forged-1", "forged-2", "forged-3"):
        with pytest.raises(ProblemError):
            await unknown.validate(_with_kid(token, kid))
    assert queries == []  # loaded within refresh_interval, after the token was issued: no reload at all
    clock.advance(oauth.keys.refresh_interval)
    for kid in ("forged-4", "forged-5"):
        with pytest.raises(ProblemError):
            await unknown.validate(_with_kid(token, kid))
    assert len(queries) == 1
    await unknown.validate(token, leeway=10_000)  # long expired by now; only the key lookup matters here
    assert len(queries) == 1  # a known kid never touches the database


def _kid(token: str) -> str:
    return str(json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"])


def _with_kid(token: str, kid: str) -> str:
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    header["kid"] = kid
    return ".".join([b64(header), *token.split(".")[1:]])
