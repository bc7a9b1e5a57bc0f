"""Portal accounts and browser sessions; roles and who may grant them.

Passwords are hashed with scrypt (memory-hard, in the standard library) with a
per-account salt; sessions are server-side rows keyed by the SHA-256 of a random
cookie value, so a leaked database holds no usable session, and each session carries
its own CSRF token that every state-changing form must echo.

Nothing about an account's email gives it a role. An account proves it owns its
address by a signed, expiring link (`confirm`); until then it may sign in but not
register applications. The `admin` and `operations` roles are granted and revoked
only by an existing admin (the portal's admin page) or by `psconnect accounts` on the
server — and the very first admin by a one-time enrolment link the server prints while
no admin exists. Every grant and revocation is in the audit trail, written in the same
transaction as the change.
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
from foundation.audit import AuditLog
from foundation.clock import as_utc, utcnow
from foundation.db import metadata
from web.portal.links import SignedLinks

__all__ = ["CONFIRM_TTL", "ENROL_TTL", "ROLES", "Account", "Accounts", "Session", "hash_password",
           "upgrade_schema", "verify_password"]

SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}
SESSION_TTL = dt.timedelta(hours=8)
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
ROLES: tuple[str, ...] = ("admin", "operations")
"""`admin`: the portal's admin page (approvals, roles); `operations`: the operations console (admins too)."""
CONFIRM_TTL = dt.timedelta(hours=48)
ENROL_TTL = dt.timedelta(hours=24)

accounts = sa.Table(
    "portal_accounts", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # Added after the first release: nullable, so `upgrade_schema` can add them to an existing table.
    sa.Column("is_operations", sa.Boolean, nullable=True, default=False),
    sa.Column("email_confirmed_at", sa.DateTime(timezone=True), nullable=True),
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
    email_confirmed: bool = False
    """Opened the confirmation link sent to its address; needed to register applications."""

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(r for r, held in (("admin", self.is_admin), ("operations", self.is_operations)) if held)


@dataclass(frozen=True)
class Session:
    account: Account
    csrf_token: str


class Accounts:
    def __init__(self, engine: sa.Engine, links: SignedLinks | None = None, *, base_url: str = "") -> None:
        self.engine = engine
        self.links = links or SignedLinks(engine)
        self.base_url = base_url.rstrip("/")
        self.audit = AuditLog(engine)

    def _account(self, row: sa.RowMapping) -> Account:
        admin = bool(row["is_admin"])
        return Account(id=row["id"], email=row["email"], name=row["name"], is_admin=admin,
                       is_operations=admin or bool(row["is_operations"]),
                       email_confirmed=row["email_confirmed_at"] is not None)

    def sign_up(self, email: str, name: str, password: str) -> Account:
        """A new account with no role and an unconfirmed email, whatever the address."""
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
        account = Account(id=f"acc_{uuid.uuid4().hex[:16]}", email=email, name=name.strip(), is_admin=False)
        try:
            with self.engine.begin() as conn:
                conn.execute(accounts.insert().values(id=account.id, email=email, name=account.name,
                                                      password_hash=hash_password(password), is_admin=False,
                                                      is_operations=False, created_at=utcnow()))
        except sa.exc.IntegrityError as exc:
            raise ProblemError(409, "conflict", "Account exists", "An account with this email exists; sign in.",
                               code="account_exists") from exc
        return account

    # --- email confirmation ------------------------------------------------------------
    def confirmation_link(self, account: Account) -> str:
        token = self.links.issue("confirm_email", f"{account.id} {account.email}", CONFIRM_TTL)
        return f"{self.base_url}/portal/confirm?token={token}"

    def confirm(self, token: str) -> Account:
        """Mark the link's account confirmed (again is harmless); a 400 problem for a bad or expired link."""
        claims = self.links.verify(token, "confirm_email")
        account_id, _, email = claims.s.partition(" ")
        with self.engine.begin() as conn:
            conn.execute(accounts.update().where(accounts.c.id == account_id, accounts.c.email == email,
                                                 accounts.c.email_confirmed_at.is_(None))
                         .values(email_confirmed_at=utcnow()))
        return self.get(account_id)

    # --- roles ---------------------------------------------------------------------------
    def get(self, account_id: str) -> Account:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(accounts).where(accounts.c.id == account_id)).mappings().first()
        if row is None:
            raise ProblemError(404, "not-found", "Account not found", f"No account {account_id!r}.")
        return self._account(row)

    def by_email(self, email: str) -> Account:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(accounts).where(accounts.c.email == email.strip().lower())
                               ).mappings().first()
        if row is None:
            raise ProblemError(404, "not-found", "Account not found", f"No portal account for {email!r}.",
                               code="unknown_account")
        return self._account(row)

    def all(self) -> list[Account]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(accounts).order_by(accounts.c.email)).mappings().all()
        return [self._account(r) for r in rows]

    def admin_exists(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(accounts.c.id).where(accounts.c.is_admin.is_(True)).limit(1)).first() \
                is not None

    def set_role(self, actor: str, account_id: str, role: str, held: bool) -> Account:
        """Grant (`held`) or revoke `role`, audited as `grant_role`/`revoke_role` in the same transaction.

        `actor` is who decided: an admin's email, or the server command's operator. A no-op
        change records nothing; the last admin cannot be revoked (nobody could grant again).
        """
        if role not in ROLES:
            raise ProblemError(422, "validation-error", "Unknown role", f"Roles are {', '.join(ROLES)}.",
                               errors=[FieldError(pointer="role", detail=f"one of {', '.join(ROLES)}")],
                               code="unknown_role")
        column = accounts.c.is_admin if role == "admin" else accounts.c.is_operations
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(accounts).where(accounts.c.id == account_id)).mappings().first()
            if row is None:
                raise ProblemError(404, "not-found", "Account not found", f"No account {account_id!r}.")
            if bool(row[column.name]) == held:
                return self._account(row)
            if role == "admin" and not held:
                admins = conn.execute(sa.select(sa.func.count()).select_from(accounts)
                                      .where(accounts.c.is_admin.is_(True))).scalar_one()
                if admins <= 1:
                    raise ProblemError(409, "conflict", "Last admin", "The last admin cannot be revoked; grant "
                                       "another account admin first.", code="last_admin")
            conn.execute(accounts.update().where(accounts.c.id == account_id).values({column.name: held}))
            self.audit.record(conn, actor, "account", account_id, "grant_role" if held else "revoke_role",
                              {"role": (None, role) if held else (role, None), "email": (row["email"], row["email"])})
        return self.get(account_id)

    def enrolment_link(self) -> str | None:
        """A one-time link that makes its signed-in opener the first admin; None once an admin exists."""
        if self.admin_exists():
            return None
        return f"{self.base_url}/portal/enrol?token={self.links.issue('enrol_admin', '', ENROL_TTL)}"

    def check_enrolment(self, token: str) -> None:
        """The link is genuine, unexpired, unused and no admin exists yet; a problem otherwise."""
        self.links.verify(token, "enrol_admin")
        if self.admin_exists():
            raise ProblemError(409, "conflict", "An admin exists", "This portal has an admin already; ask them "
                               "for a role.", code="admin_exists")

    def enrol(self, account: Account, token: str) -> Account:
        """Spend the enrolment link: `account` becomes the first admin (audited, actor: the link)."""
        claims = self.links.verify(token, "enrol_admin")
        with self.engine.begin() as conn:
            if conn.execute(sa.select(accounts.c.id).where(accounts.c.is_admin.is_(True)).limit(1)).first():
                raise ProblemError(409, "conflict", "An admin exists", "This portal has an admin already; ask "
                                   "them for a role.", code="admin_exists")
            self.links.spend(conn, claims)
            conn.execute(accounts.update().where(accounts.c.id == account.id).values(is_admin=True))
            self.audit.record(conn, f"{account.email} (enrolment link)", "account", account.id, "grant_role",
                              {"role": (None, "admin"), "email": (account.email, account.email)})
        return self.get(account.id)

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


def upgrade_schema(engine: sa.Engine) -> None:
    """Add the portal columns a database made by an older release lacks (nullable ones; no data moves)."""
    from web.portal.apps import apps as apps_table

    inspector = sa.inspect(engine)
    for table in (accounts, apps_table):
        if not inspector.has_table(table.name):
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        with engine.begin() as conn:
            for column in table.columns:
                if column.name not in present and column.nullable:
                    kind = column.type.compile(dialect=engine.dialect)
                    conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
