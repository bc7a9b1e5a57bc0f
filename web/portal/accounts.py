"""Portal accounts and browser sessions.

Passwords are hashed with scrypt (memory-hard, in the standard library) with a
per-account salt; sessions are server-side rows keyed by the SHA-256 of a random
cookie value, so a leaked database holds no usable session, and each session carries
its own CSRF token that every state-changing form must echo.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from contracts.problems import FieldError, ProblemError
from foundation.clock import as_utc, utcnow
from foundation.db import metadata

__all__ = ["Account", "Accounts", "Session", "hash_password", "verify_password"]

SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}
SESSION_TTL = dt.timedelta(hours=8)
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")

accounts = sa.Table(
    "portal_accounts", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

sessions = sa.Table(
    "portal_sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("account_id", sa.String(40), nullable=False, index=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    params = {**SCRYPT, "n": int(n)}
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **params)
    return hmac.compare_digest(candidate.hex(), digest)


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    name: str
    is_admin: bool
    is_operations: bool = False
    """May use the operations console (finance and operations staff; admins too)."""


@dataclass(frozen=True)
class Session:
    account: Account
    csrf_token: str


class Accounts:
    def __init__(self, engine: sa.Engine, admin_emails: frozenset[str],
                 operations_emails: frozenset[str] = frozenset()) -> None:
        self.engine = engine
        self.admin_emails = admin_emails
        self.operations_emails = operations_emails

    def _account(self, row: sa.RowMapping) -> Account:
        admin = bool(row["is_admin"])
        return Account(id=row["id"], email=row["email"], name=row["name"], is_admin=admin,
                       is_operations=admin or row["email"] in self.operations_emails)

    def sign_up(self, email: str, name: str, password: str) -> Account:
        email = email.strip().lower()
        errors = []
        if not EMAIL.match(email):
            errors.append(FieldError(pointer="email", detail="not an email address"))
        if not 1 <= len(name.strip()) <= 120:
            errors.append(FieldError(pointer="name", detail="1 to 120 characters"))
        if len(password) < 12 or len(password) > 200:
            errors.append(FieldError(pointer="password", detail="12 to 200 characters"))
        if errors:
            raise ProblemError(422, "validation-error", "Validation failed", "The sign-up form has errors.",
                               errors=errors, code="invalid_signup")
        account = Account(id=f"acc_{uuid.uuid4().hex[:16]}", email=email, name=name.strip(),
                          is_admin=email in self.admin_emails,
                          is_operations=email in self.admin_emails or email in self.operations_emails)
        try:
            with self.engine.begin() as conn:
                conn.execute(accounts.insert().values(id=account.id, email=email, name=account.name,
                                                      password_hash=hash_password(password),
                                                      is_admin=account.is_admin, created_at=utcnow()))
        except sa.exc.IntegrityError as exc:
            raise ProblemError(409, "conflict", "Account exists", "An account with this email exists; sign in.",
                               code="account_exists") from exc
        return account

    def sign_in(self, email: str, password: str) -> Account | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(accounts).where(accounts.c.email == email.strip().lower())).mappings().first()
        if row is None:
            hash_password(password)  # same cost whether or not the account exists
            return None
        if not verify_password(password, row["password_hash"]):
            return None
        return self._account(row)

    def open_session(self, account: Account) -> tuple[str, Session]:
        """A new session; returns the cookie value (shown to the browser only) and the session."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        with self.engine.begin() as conn:
            conn.execute(sessions.insert().values(token_hash=_digest(token), account_id=account.id, csrf_token=csrf,
                                                  expires_at=utcnow() + SESSION_TTL))
        return token, Session(account=account, csrf_token=csrf)

    def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sessions, accounts).join(accounts, accounts.c.id == sessions.c.account_id)
                               .where(sessions.c.token_hash == _digest(token))).mappings().first()
        if row is None or as_utc(row["expires_at"]) < utcnow():
            return None
        return Session(account=self._account(row), csrf_token=row["csrf_token"])

    def close_session(self, token: str | None) -> None:
        if token:
            with self.engine.begin() as conn:
                conn.execute(sessions.delete().where(sessions.c.token_hash == _digest(token)))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
