"""Xero's OAuth 2.0 tokens: 30-minute access tokens and single-use, rotating refresh tokens.

Every refresh answers a new refresh token and retires the one sent
(https://developer.xero.com/documentation/guides/oauth2/auth-flow/#refreshing-access-and-refresh-tokens).
A rotation whose answer is lost would lock the connection out, so the order is fixed:

1. send the stored refresh token;
2. **persist** the new refresh token (`RefreshTokenStore.save`, a row per connection in
   ``xero_refresh_tokens`` on ``foundation.db.metadata``) — only then
3. use the new access token.

A crash between 1 and 2 leaves the old token stored: Xero accepts a retired refresh token
again for a grace period of 30 minutes (same page: "If for whatever reason your app doesn't
receive the response you can retry your existing token for a grace period of 30 minutes"),
so the next process refreshes with it. A crash between 2 and 3 loses only an access token:
the stored new refresh token mints another. One refresh at a time per connection: a lock per
process, and across processes (gateway workers) a PostgreSQL advisory lock held from reading the
stored token to saving its successor — two workers exchanging the same token would otherwise leave
the store holding whichever answer was saved last, possibly already retired. A token someone else
refreshed meanwhile is reused, not refreshed again.
Tokens are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Final, Protocol

import httpx
import msgspec
import sqlalchemy as sa

from foundation.db import metadata
from system_apis._internal.http import Sleep, VendorRejected, VendorUnavailable

__all__ = ["TOKEN_URL", "MemoryTokenStore", "RefreshTokenStore", "SqlTokenStore", "TokenSet", "XeroTokens",
           "refresh_tokens", "token_error"]

TOKEN_URL: Final = "https://identity.xero.com/connect/token"
EARLY: Final = 120.0
"""Refresh this many seconds before the access token expires, so no call carries a dying token."""

refresh_tokens = sa.Table(
    "xero_refresh_tokens", metadata,
    sa.Column("connection", sa.String(120), primary_key=True),
    sa.Column("refresh_token", sa.Text, nullable=False),
    sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=False),
)


class RefreshTokenStore(Protocol):
    """Where a connection's current refresh token survives the process."""

    def load(self, connection: str) -> str | None: ...

    def save(self, connection: str, refresh_token: str) -> None: ...

    def exclusive(self, connection: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Held from loading the token to saving its successor: no other process rotates meanwhile."""
        ...


class SqlTokenStore:
    """The refresh token per connection in ``xero_refresh_tokens`` (SQLite or PostgreSQL)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        refresh_tokens.create(engine, checkfirst=True)

    def load(self, connection: str) -> str | None:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(refresh_tokens.c.refresh_token)
                                 .where(refresh_tokens.c.connection == connection)).scalar_one_or_none()
        return str(found) if found is not None else None

    @contextlib.asynccontextmanager
    async def exclusive(self, connection: str) -> AsyncIterator[None]:
        """A PostgreSQL advisory lock per connection (waited for in a thread, not on the event loop);
        SQLite serves one process, whose own lock suffices."""
        if self.engine.dialect.name != "postgresql":
            yield
            return
        key = int.from_bytes(hashlib.sha256(f"xero-refresh:{connection}".encode()).digest()[:8], "big", signed=True)
        conn = await asyncio.to_thread(self.engine.connect)
        try:
            await asyncio.to_thread(conn.execute, sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                await asyncio.to_thread(conn.execute, sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        finally:
            await asyncio.to_thread(conn.close)

    def save(self, connection: str, refresh_token: str) -> None:
        now = dt.datetime.now(dt.UTC)
        with self.engine.begin() as conn:
            updated = conn.execute(sa.update(refresh_tokens).where(refresh_tokens.c.connection == connection)
                                   .values(refresh_token=refresh_token, rotated_at=now)).rowcount
            if not updated:
                conn.execute(sa.insert(refresh_tokens).values(connection=connection, refresh_token=refresh_token,
                                                              rotated_at=now))


class MemoryTokenStore:
    """A store for one process (tests, the in-process simulator): lost with the process."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}

    def load(self, connection: str) -> str | None:
        return self.tokens.get(connection)

    def save(self, connection: str, refresh_token: str) -> None:
        self.tokens[connection] = refresh_token

    @contextlib.asynccontextmanager
    async def exclusive(self, connection: str) -> AsyncIterator[None]:
        yield


class TokenSet(msgspec.Struct):
    """The token endpoint's answer (https://developer.xero.com/documentation/guides/oauth2/auth-flow/)."""

    access_token: str
    expires_in: int
    token_type: str
    refresh_token: str
    scope: str | None = None


class XeroTokens:
    """The access token of one connection, refreshed before expiry and once on a 401."""

    def __init__(self, http: httpx.AsyncClient, store: RefreshTokenStore, connection: str,
                 credentials: Mapping[str, str], *, token_url: str = TOKEN_URL,
                 clock: Callable[[], float] = time.time, sleep: Sleep = asyncio.sleep, attempts: int = 3) -> None:
        self._http = http
        self._store = store
        self._connection = connection
        self._client_id = credentials.get("client_id", "")
        self._client_secret = credentials.get("client_secret", "")
        self._initial = credentials.get("refresh_token")
        self._token_url = token_url
        self._clock = clock
        self._sleep = sleep
        self._attempts = attempts
        self._access: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def access_token(self) -> str:
        if self._access is not None and self._clock() < self._expires_at - EARLY:
            return self._access
        return await self.refresh(self._access)

    async def refresh(self, stale: str | None) -> str:
        """A fresh access token; `stale` is the one that failed (another caller may have replaced it already)."""
        async with self._lock:
            if self._access is not None and self._access != stale and self._clock() < self._expires_at - EARLY:
                return self._access
            async with self._store.exclusive(self._connection):
                current = self._store.load(self._connection) or self._initial
                if not current:
                    raise VendorRejected("xero", "no refresh token for this connection: consent again", status=401,
                                         code="invalid_grant")
                tokens = await self._exchange(current)
                self._store.save(self._connection, tokens.refresh_token)  # persist before any use of the new pair
            self._access = tokens.access_token
            self._expires_at = self._clock() + tokens.expires_in
            return tokens.access_token

    async def _exchange(self, refresh_token: str) -> TokenSet:
        """POST the refresh grant; a lost answer or a 5xx is retried with the same token (the grace period)."""
        basic = base64.b64encode(f"{self._client_id}:{self._client_secret}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}", "Accept": "application/json"}
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        failure: Exception | None = None
        for attempt in range(self._attempts):
            if attempt:
                await self._sleep(0.2 * attempt)
            try:
                response = await self._http.post(self._token_url, data=form, headers=headers)
            except httpx.TransportError as exc:
                failure = VendorUnavailable("xero", f"token endpoint unreachable: {type(exc).__name__}")
                continue
            if response.status_code >= 500 or response.status_code == 429:
                failure = VendorUnavailable("xero", f"token endpoint answered {response.status_code}",
                                            status=response.status_code)
                continue
            rejected = token_error(response)
            if rejected is not None:
                raise rejected
            return msgspec.json.decode(response.content, type=TokenSet)
        assert failure is not None
        raise failure


def token_error(response: httpx.Response) -> VendorRejected | None:
    """The token endpoint's OAuth error body ``{error, error_description}`` (RFC 6749 §5.2)."""
    if response.status_code != 400 and response.status_code != 401:
        return None
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = str(body.get("error") or "invalid_request") if isinstance(body, dict) else "invalid_request"
    return VendorRejected("xero", f"token endpoint: {code}", status=response.status_code, code=code, body=body)
