"""Two gateway processes on one PostgreSQL database: a token signed by one verifies on the other at once.

Each process is an `OAuth` with its own engine and key cache, as `psconnect serve --workers 2`
builds them. Process A creates or rotates the signing key and issues a token; process B verifies
it on the first try, including when B's cache was loaded during A's commit (so B's last load missed
the key and B is not yet due for a periodic reload). A flood of forged kids still costs B at most
one query per `reload_gap`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from contracts.problems import ProblemError
from foundation.db import create_engine
from gateway.oauth import OAuth
from tests.security.oauth_kit import Clock, b64, build_oauth
from tests.stack import postgres_database

pytestmark = pytest.mark.postgres


class Pair:
    """Process A (issues) and process B (verifies), sharing one database and one host clock."""

    def __init__(self, a: OAuth, b: OAuth, clock: Clock) -> None:
        self.a, self.b, self.clock = a, b, clock

    def issue(self) -> str:
        return self.a.issue_service_token("app", ["crm.accounts:read"])


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    clock = Clock(time.time())
    async with postgres_database() as url:
        engines = [create_engine(url), create_engine(url)]
        try:
            a = build_oauth(engines[0], tmp_path / "a", token_ttl=60, clock=clock)
            b = build_oauth(engines[1], tmp_path / "b", token_ttl=60, clock=clock)
            a.clients.ensure("app", "App", ["crm.accounts:read"], "secret")
            yield Pair(a, b, clock)
        finally:
            for engine in engines:
                engine.dispose()


def _kid(token: str) -> str:
    return str(json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"])


def _forged(token: str, kid: str, **claims: Any) -> str:
    header_b64, payload_b64, signature = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=="))
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=="))
    return ".".join([b64({**header, "kid": kid}), b64({**payload, **claims}), signature])


@contextmanager
def queries_of(engine: sa.Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


async def test_first_key_token_verifies_on_the_other_process_for_every_concurrent_first_call(pair: Pair) -> None:
    # B has never loaded a key; A creates the very first one (it signs at once) and issues a token.
    token = pair.issue()
    answers = await asyncio.gather(*(pair.b.validator.validate(token) for _ in range(20)), return_exceptions=True)
    assert [a.client_id if not isinstance(a, BaseException) else repr(a) for a in answers] == ["app"] * 20


async def test_first_key_created_just_after_the_other_process_loaded_verifies_there(pair: Pair) -> None:
    assert pair.b.keys.refresh()  # B loads an empty table (its JWKS was asked for, say) ...
    token = pair.issue()  # ... then A creates the first key and signs with it at once
    assert (await pair.b.validator.validate(token)).client_id == "app"


async def test_rotation_committed_just_after_the_other_process_reloaded_verifies_there(pair: Pair) -> None:
    first = pair.issue()
    assert (await pair.b.validator.validate(first)).client_id == "app"  # B caches the first key
    pair.clock.advance(pair.b.keys.refresh_interval + 1)  # B is due for a reload

    def b_reloads_during_commit(_conn: Any) -> None:
        # A's rotation has read its clock and inserted the key; B reloads before A commits.
        pair.clock.advance(0.5)
        assert pair.b.keys.refresh()

    engine_a = pair.a.keys.engine
    sa.event.listen(engine_a, "commit", b_reloads_during_commit)
    try:
        new_kid = pair.a.keys.rotate()
    finally:
        sa.event.remove(engine_a, "commit", b_reloads_during_commit)
    assert new_kid not in {k.kid for k in pair.b.keys._keys}  # B's last load missed the new key

    pair.clock.advance(pair.a.keys.refresh_interval - 0.5 + 0.01)  # A's new key signs; B's cache is ~4.5 s old
    token = pair.issue()
    assert _kid(token) == new_kid
    assert (await pair.b.validator.validate(token)).client_id == "app"  # first try, no 401


async def test_rotation_by_the_other_process_verifies_right_after(pair: Pair) -> None:
    assert (await pair.b.validator.validate(pair.issue())).client_id == "app"
    pair.a.keys.rotate()
    assert (await pair.b.validator.validate(pair.issue())).client_id == "app"  # old key still signs
    pair.clock.advance(pair.a.keys.refresh_interval)
    token = pair.issue()
    assert (await pair.b.validator.validate(token)).client_id == "app"


async def test_forged_kids_cost_at_most_one_query_per_reload_gap(pair: Pair) -> None:
    token = pair.issue()
    assert (await pair.b.validator.validate(token)).client_id == "app"  # B's cache is loaded now
    keys = pair.b.keys
    with queries_of(keys.engine) as seen:
        # Tokens issued well before B's last load: no reload can find their key.
        old = int(pair.clock()) - keys.leeway - 60
        for i in range(5):
            with pytest.raises(ProblemError, match="unknown signing key"):
                await pair.b.validator.validate(_forged(token, f"forged-old-{i}", iat=old))
        assert seen == []

        # Fresh-looking forged tokens, 200 at once and then in waves for about a second.
        started = time.monotonic()
        for wave in range(5):
            batch = [pair.b.validator.validate(_forged(token, f"forged-{wave}-{i}")) for i in range(40)]
            results = await asyncio.gather(*batch, return_exceptions=True)
            assert all(isinstance(r, ProblemError) and "unknown signing key" in (r.problem.detail or "")
                       for r in results)
        elapsed = time.monotonic() - started
    reloads = len(seen)
    assert 1 <= reloads <= 1 + elapsed / keys.reload_gap + 1e-9, (reloads, elapsed)
    assert reloads <= 5  # at most one reload per wave of 40 forged tokens, never one per token
