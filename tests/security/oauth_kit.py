"""Shared helpers for the OAuth tests: a controllable clock, OAuth on SQLite or PostgreSQL, token forging."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from joserfc import jws
from joserfc.jwk import Key
from litestar import Litestar

from foundation.db import create_engine
from gateway.errors import EXCEPTION_HANDLERS
from gateway.oauth import OAuth
from gateway.settings import ExternalIssuer, load_settings

__all__ = ["PG_URL", "Clock", "b64", "build_oauth", "engine_for", "forge", "oauth_app", "sign"]

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
ISSUER = "http://127.0.0.1:8000"


class Clock:
    """A settable `time.time` stand-in."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def engine_for(backend: str, tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh store: a SQLite file in tmp_path, or a throw-away schema on the shared PostgreSQL."""
    if backend == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'oauth.sqlite'}")
        try:
            yield engine
        finally:
            engine.dispose()
        return
    base = create_engine(PG_URL)
    schema = "oauth_test_" + secrets.token_hex(6)
    with base.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield base.execution_options(schema_translate_map={None: schema})
    finally:
        with base.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        base.dispose()


def build_oauth(engine: sa.Engine, tmp_path: Path, *, token_ttl: int = 300,
                external: tuple[ExternalIssuer, ...] = (), **kwargs: Any) -> OAuth:
    settings = load_settings(env={}, home=str(tmp_path / "home"), database_url="sqlite://", token_ttl=token_ttl,
                             external_issuers=external)
    oauth = OAuth(settings, engine, **kwargs)
    oauth.create_tables()
    return oauth


def oauth_app(oauth: OAuth) -> Litestar:
    return Litestar(route_handlers=oauth.routes, exception_handlers=EXCEPTION_HANDLERS)


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS with an arbitrary (possibly invalid) signature."""
    return f"{b64(header)}.{b64(claims)}.{b64(signature)}"


def sign(header: dict[str, Any], claims: dict[str, Any], key: Key) -> str:
    """A correctly signed compact JWS (joserfc, any algorithm)."""
    return jws.serialize_compact(header, json.dumps(claims).encode(), key, algorithms=[header["alg"]])
