"""The registry of OAuth2 clients (consumers) that may obtain access tokens.

Secrets are generated here (32 random bytes, URL-safe) and only their salted
SHA-256 digest is stored. A slow password hash (bcrypt, argon2) exists to resist
brute force of *low-entropy human* passwords; a 256-bit random secret cannot be
brute-forced whatever the hash, so a fast hash costs nothing in safety and keeps
the token endpoint at microseconds per authentication. The salt still stops two
equal secrets (e.g. a seeded demo secret) from sharing a digest, and
`hmac.compare_digest` keeps the comparison constant-time.

The plain secret is returned exactly once (by `create` / `rotate_secret`); it
cannot be recovered from the store.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
import sqlalchemy as sa

from foundation.db import metadata

__all__ = ["ClientRegistry", "OAuthClient", "hash_secret", "oauth_clients", "verify_secret"]

oauth_clients = sa.Table(
    "oauth_clients",
    metadata,
    sa.Column("client_id", sa.String(128), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("secret_hash", sa.String(200), nullable=False),
    sa.Column("scopes", sa.Text, nullable=False, default=""),
    sa.Column("legal_entities", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

_GRANT_TYPES = frozenset({"client_credentials"})
_AUTH_METHODS = frozenset({"client_secret_basic", "client_secret_post"})


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    """`sha256$<salt hex>$<digest hex>` of a client secret."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.sha256(salt + secret.encode()).hexdigest()
    return f"sha256${salt.hex()}${digest}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest = stored.split("$")
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    if scheme != "sha256":
        return False
    candidate = hashlib.sha256(salt + secret.encode()).hexdigest()
    return hmac.compare_digest(candidate, digest)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes even for timezone=True columns.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class OAuthClient(msgspec.Struct, frozen=True, kw_only=True):
    """A registered client; also authlib's ClientMixin for the token endpoint."""

    client_id: str
    name: str
    scopes: tuple[str, ...]
    legal_entities: tuple[str, ...] | None
    """Legal-entity codes the client may act for; None = unrestricted."""
    created_at: datetime
    revoked_at: datetime | None
    secret_hash: str

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    # --- authlib ClientMixin -------------------------------------------------
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The scope to grant: what was asked (already checked to be allowed) or all allowed."""
        if not scope:
            return " ".join(self.scopes)
        allowed = set(self.scopes)
        return " ".join(s for s in dict.fromkeys(scope.split()) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return not self.revoked and verify_secret(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in _AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in _GRANT_TYPES


def _split(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value.split())


def _join(values: Sequence[str]) -> str:
    for v in values:
        if not v or any(c.isspace() for c in v):
            raise ValueError(f"invalid scope or legal-entity code: {v!r}")
    return " ".join(dict.fromkeys(values))


class ClientRegistry:
    """Clients in the `oauth_clients` table (SQLite or PostgreSQL, SQLAlchemy Core)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def create(
        self,
        name: str,
        scopes: Sequence[str],
        *,
        client_id: str | None = None,
        secret: str | None = None,
        legal_entities: Sequence[str] | None = None,
    ) -> tuple[str, str]:
        """Register a client; returns `(client_id, secret)` — the secret is shown only now."""
        client_id = client_id or "app-" + secrets.token_urlsafe(12)
        secret = secret or secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(oauth_clients.insert().values(
                client_id=client_id,
                name=name,
                secret_hash=hash_secret(secret),
                scopes=_join(scopes),
                legal_entities=None if legal_entities is None else _join(legal_entities),
                created_at=datetime.now(UTC),
                revoked_at=None,
            ))
        return client_id, secret

    def get(self, client_id: str) -> OAuthClient | None:
        """The client, revoked or not; None if unknown."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(oauth_clients).where(oauth_clients.c.client_id == client_id)).first()
        if row is None:
            return None
        return OAuthClient(
            client_id=row.client_id,
            name=row.name,
            scopes=_split(row.scopes) or (),
            legal_entities=_split(row.legal_entities),
            created_at=_utc(row.created_at) or datetime.now(UTC),
            revoked_at=_utc(row.revoked_at),
            secret_hash=row.secret_hash,
        )

    def active(self, client_id: str) -> OAuthClient | None:
        """The client if it exists and is not revoked (what the token endpoint may serve)."""
        client = self.get(client_id)
        return None if client is None or client.revoked else client

    def authenticate(self, client_id: str, secret: str) -> OAuthClient | None:
        client = self.active(client_id)
        if client is None or not verify_secret(secret, client.secret_hash):
            return None
        return client

    def rotate_secret(self, client_id: str) -> str:
        """Replace the secret at once (the old one stops working); returns the new one."""
        secret = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            result = conn.execute(oauth_clients.update()
                                  .where(oauth_clients.c.client_id == client_id)
                                  .values(secret_hash=hash_secret(secret)))
        if result.rowcount == 0:
            raise KeyError(client_id)
        return secret

    def set_grants(self, client_id: str, scopes: Sequence[str], legal_entities: Sequence[str] | None) -> None:
        """Replace what the client may ask for (an admin's approval in the portal); tokens issued later see it."""
        with self.engine.begin() as conn:
            result = conn.execute(oauth_clients.update().where(oauth_clients.c.client_id == client_id).values(
                scopes=_join(scopes), legal_entities=None if legal_entities is None else _join(legal_entities)))
        if result.rowcount == 0:
            raise KeyError(client_id)

    def revoke(self, client_id: str) -> None:
        """Stop issuing tokens to the client. Tokens already issued live until `exp` (short TTL)."""
        with self.engine.begin() as conn:
            result = conn.execute(oauth_clients.update()
                                  .where(oauth_clients.c.client_id == client_id,
                                         oauth_clients.c.revoked_at.is_(None))
                                  .values(revoked_at=datetime.now(UTC)))
        if result.rowcount == 0 and self.get(client_id) is None:
            raise KeyError(client_id)

    def ensure(self, client_id: str, name: str, scopes: Sequence[str], secret: str | None) -> OAuthClient:
        """Make the client exist with exactly these scopes (seeding; safe to repeat, also across workers).

        `secret=None` keeps an existing secret, and gives a new client a random one nobody
        knows: right for the in-process service identity, which gets its tokens from
        `issue_service_token` and never through the token endpoint. Also un-revokes the
        client: a seeded client is meant to work after every start.
        """
        current = self.get(client_id)
        if current is None:
            try:
                self.create(name, scopes, client_id=client_id, secret=secret)
            except sa.exc.IntegrityError:
                current = self.get(client_id)  # another worker seeded it at the same moment
            else:
                created = self.get(client_id)
                assert created is not None
                return created
        values: dict[str, object] = {"name": name, "scopes": _join(scopes), "revoked_at": None}
        if secret is not None and (current is None or not verify_secret(secret, current.secret_hash)):
            values["secret_hash"] = hash_secret(secret)
        with self.engine.begin() as conn:
            conn.execute(oauth_clients.update().where(oauth_clients.c.client_id == client_id).values(**values))
        client = self.get(client_id)
        assert client is not None
        return client
