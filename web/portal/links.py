"""Signed, expiring, single-use links the portal sends or prints: email confirmation and admin enrolment.

A link carries its own claims (purpose, subject, expiry, a random nonce) and an
HMAC-SHA256 over them, keyed by a secret kept in the database — so every worker and
host verifies what another issued, and nothing is stored per link. Spending a link
records its nonce (`portal_spent_links`, primary key): a second use fails on the key,
even when two requests race.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets

import msgspec
import sqlalchemy as sa

from contracts.problems import ProblemError
from foundation.clock import utcnow
from foundation.db import metadata

__all__ = ["LinkClaims", "SignedLinks"]

keys = sa.Table(
    "portal_keys", metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("secret", sa.String(128), nullable=False),
)

spent = sa.Table(
    "portal_spent_links", metadata,
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("purpose", sa.String(40), nullable=False),
    sa.Column("spent_at", sa.DateTime(timezone=True), nullable=False),
)


class LinkClaims(msgspec.Struct, frozen=True):
    p: str
    """Purpose: `confirm_email` or `enrol_admin`; a link is only good for its own."""
    s: str
    """Subject: the account id and email it confirms, or "" for an enrolment."""
    e: int
    """Expiry, epoch seconds."""
    n: str
    """Random nonce; what spending records."""


class SignedLinks:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._secret: bytes | None = None

    def _key(self) -> bytes:
        if self._secret is None:
            with self.engine.connect() as conn:
                found = conn.execute(sa.select(keys.c.secret).where(keys.c.name == "links")).scalar()
            if found is None:
                try:
                    with self.engine.begin() as conn:
                        conn.execute(keys.insert().values(name="links", secret=secrets.token_hex(32)))
                except sa.exc.IntegrityError:
                    pass  # another worker made it first; read theirs
                with self.engine.connect() as conn:
                    found = conn.execute(sa.select(keys.c.secret).where(keys.c.name == "links")).scalar_one()
            self._secret = bytes.fromhex(found)
        return self._secret

    def issue(self, purpose: str, subject: str, ttl: dt.timedelta) -> str:
        claims = LinkClaims(p=purpose, s=subject, e=int((utcnow() + ttl).timestamp()), n=secrets.token_urlsafe(18))
        body = _b64(msgspec.json.encode(claims))
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str, purpose: str) -> LinkClaims:
        """The claims of a genuine, unexpired link for `purpose`; a 400 problem otherwise (and nothing changes)."""
        body, _, signature = token.partition(".")
        claims: LinkClaims | None = None
        if body and hmac.compare_digest(signature, self._sign(body)):
            try:
                claims = msgspec.json.decode(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)), type=LinkClaims)
            except (ValueError, msgspec.DecodeError):
                claims = None
        if claims is None or claims.p != purpose:
            raise ProblemError(400, "bad-request", "Invalid link", "This link is not valid; ask for a new one.",
                               code="invalid_link")
        if claims.e < utcnow().timestamp():
            raise ProblemError(400, "bad-request", "Link expired", "This link has expired; ask for a new one.",
                               code="link_expired")
        return claims

    def spend(self, conn: sa.Connection, claims: LinkClaims) -> None:
        """Mark the link used inside the caller's transaction; a 409 problem if it was used already."""
        try:  # the caller's transaction rolls back with the problem raised here
            conn.execute(spent.insert().values(nonce=claims.n, purpose=claims.p, spent_at=utcnow()))
        except sa.exc.IntegrityError as exc:
            raise ProblemError(409, "conflict", "Link already used", "This link was used already.",
                               code="link_used") from exc

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key(), body.encode(), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
