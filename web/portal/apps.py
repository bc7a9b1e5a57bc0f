"""Applications registered in the portal: each is an OAuth client owned by an account.

The secret is returned once, at registration or rotation, and never stored in
clear. A plan change to a higher plan waits for an admin; a lower one applies at
once. Scopes likewise: the self-service ones (the bindings' `self_service`, by
default reads of the experience and process APIs) are granted at registration, and
every other one — finance writes, the system layer — waits for an admin, so the
issued client can only ask for what was granted until the approval widens it. An
app may ask to be restricted to some legal entities (applied at once: it only
narrows), and the approving admin may impose a restriction. Every change is written
to the audit trail with who made it. Only accounts that confirmed their email
register applications.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa

from contracts.problems import FieldError, ProblemError
from foundation.audit import AuditLog
from foundation.clock import utcnow
from foundation.db import metadata
from web.portal.accounts import Account

__all__ = ["PLANS", "App", "Apps", "ClientIssuer"]

PLANS: tuple[str, ...] = ("bronze", "silver", "gold")
"""Plans in ascending order; moving right needs an admin's approval."""
ENTITY = re.compile(r"^[A-Z0-9]{2,12}$")

apps = sa.Table(
    "portal_apps", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.String(40), nullable=False, index=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("client_id", sa.String(80), nullable=False, unique=True),
    sa.Column("scopes", sa.Text, nullable=False),
    sa.Column("plan", sa.String(20), nullable=False),
    sa.Column("requested_plan", sa.String(20)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    # Scopes waiting for an admin's approval (space-separated); NULL when none wait.
    sa.Column("requested_scopes", sa.Text, nullable=True),
    # Legal entities the app's client is restricted to (space-separated); NULL = unrestricted.
    sa.Column("legal_entities", sa.Text, nullable=True),
)


class ClientIssuer(Protocol):
    """The OAuth client registry an application stands on (the gateway's authorization server)."""

    def create(self, name: str, scopes: Sequence[str], *, client_id: str | None = None,
               legal_entities: Sequence[str] | None = None) -> tuple[str, str]: ...

    def set_grants(self, client_id: str, scopes: Sequence[str], legal_entities: Sequence[str] | None) -> None: ...

    def rotate_secret(self, client_id: str) -> str: ...

    def revoke(self, client_id: str) -> None: ...


@dataclass(frozen=True)
class App:
    id: str
    account_id: str
    name: str
    client_id: str
    scopes: tuple[str, ...]
    plan: str
    requested_plan: str | None
    revoked: bool
    requested_scopes: tuple[str, ...] = ()
    """Waiting for an admin; the client does not have them yet."""
    legal_entities: tuple[str, ...] | None = None

    @property
    def pending(self) -> bool:
        return self.requested_plan is not None or bool(self.requested_scopes)


class Apps:
    def __init__(self, engine: sa.Engine, clients: ClientIssuer,
                 needs_approval: Callable[[str], bool] = lambda scope: True) -> None:
        """`needs_approval(scope)` is the bindings' sensitivity rule (`policies.bindings.scope_needs_approval`)."""
        self.engine = engine
        self.clients = clients
        self.needs_approval = needs_approval
        self.audit = AuditLog(engine)

    def register(self, account: Account, name: str, scopes: Sequence[str], plan: str,
                 legal_entities: Sequence[str] | None = None) -> tuple[App, str]:
        """Create the app and its client; returns the app and the secret, which is never shown again."""
        if not account.email_confirmed:
            raise ProblemError(403, "forbidden", "Confirm your email first",
                               "Open the confirmation link sent to your address before registering applications.",
                               code="email_unconfirmed")
        entities = _entities(legal_entities)
        name = name.strip()
        if not 1 <= len(name) <= 120:
            raise ProblemError(422, "validation-error", "Validation failed", "Name the application (1–120 chars).",
                               code="invalid_app")
        if not scopes:
            raise ProblemError(422, "validation-error", "Validation failed", "Choose at least one API scope.",
                               code="invalid_app")
        granted_plan = plan if plan == PLANS[0] else PLANS[0]  # higher plans wait for an admin
        chosen = list(dict.fromkeys(scopes))
        granted = [s for s in chosen if not self.needs_approval(s)]
        waiting = [s for s in chosen if self.needs_approval(s)]
        client_id, secret = self.clients.create(f"{name} ({account.email})", granted,
                                                client_id=f"app-{uuid.uuid4().hex[:12]}", legal_entities=entities)
        app_id = f"app_{uuid.uuid4().hex[:12]}"
        with self.engine.begin() as conn:
            conn.execute(apps.insert().values(id=app_id, account_id=account.id, name=name, client_id=client_id,
                                              scopes=" ".join(granted), plan=granted_plan,
                                              requested_plan=None if plan == granted_plan else plan,
                                              requested_scopes=" ".join(waiting) or None,
                                              legal_entities=None if entities is None else " ".join(entities),
                                              created_at=utcnow()))
            self.audit.record(conn, account.email, "application", app_id, "register",
                              {"client_id": (None, client_id), "plan": (None, granted_plan),
                               "scopes": (None, " ".join(granted)), "requested_scopes": (None, " ".join(waiting)),
                               "legal_entities": (None, None if entities is None else " ".join(entities))})
        return self.get(account, app_id), secret

    def owned_by(self, account: Account) -> list[App]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(apps).where(apps.c.account_id == account.id)
                                .order_by(apps.c.created_at)).mappings().all()
        return [_app(r) for r in rows]

    def get(self, account: Account, app_id: str) -> App:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(apps).where(apps.c.id == app_id)).mappings().first()
        if row is None or (row["account_id"] != account.id and not account.is_admin):
            raise ProblemError(404, "not-found", "Application not found", f"No application {app_id!r}.")
        return _app(row)

    def rotate(self, account: Account, app_id: str) -> str:
        app = self._live(account, app_id)
        secret = self.clients.rotate_secret(app.client_id)
        with self.engine.begin() as conn:
            self.audit.record(conn, account.email, "application", app_id, "rotate_secret", {"secret": ("…", "…")})
        return secret

    def revoke(self, account: Account, app_id: str) -> None:
        app = self._live(account, app_id)
        self.clients.revoke(app.client_id)
        with self.engine.begin() as conn:
            conn.execute(apps.update().where(apps.c.id == app_id).values(revoked_at=utcnow()))
            self.audit.record(conn, account.email, "application", app_id, "revoke", {"revoked": ("no", "yes")})

    def request_plan(self, account: Account, app_id: str, plan: str) -> App:
        app = self._live(account, app_id)
        if plan not in PLANS:
            raise ProblemError(422, "validation-error", "Unknown plan", f"Plans are {', '.join(PLANS)}.",
                               code="unknown_plan")
        upgrade = PLANS.index(plan) > PLANS.index(app.plan)
        values = {"requested_plan": plan} if upgrade else {"plan": plan, "requested_plan": None}
        with self.engine.begin() as conn:
            conn.execute(apps.update().where(apps.c.id == app_id).values(**values))
            self.audit.record(conn, account.email, "application", app_id, "request_plan" if upgrade else "change_plan",
                              {"plan": (app.plan, plan)})
        return self.get(account, app_id)

    def pending(self) -> list[App]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(apps).where(
                sa.or_(apps.c.requested_plan.is_not(None), apps.c.requested_scopes.is_not(None)),
                apps.c.revoked_at.is_(None)).order_by(apps.c.created_at)).mappings().all()
        return [_app(r) for r in rows]

    def decide(self, admin: Account, app_id: str, approve: bool,
               legal_entities: Sequence[str] | None = None) -> None:
        """Approve or reject everything the app waits for (plan, scopes); `legal_entities` imposes a restriction.

        The client's scopes and restriction change with the app (approval is what widens
        them); each decision is audited with the admin's email.
        """
        if not admin.is_admin:
            raise ProblemError(403, "forbidden", "Admins only", "Only an admin decides plan upgrades and scopes.",
                               code="not_admin")
        app = self.get(admin, app_id)
        imposed = _entities(legal_entities)
        if not app.pending and imposed is None:
            raise ProblemError(409, "conflict", "Nothing to decide", "This application has no pending request.",
                               code="no_pending_request")
        values: dict[str, object] = {"requested_plan": None, "requested_scopes": None}
        if approve and app.requested_plan is not None:
            values["plan"] = app.requested_plan
        scopes = list(dict.fromkeys([*app.scopes, *app.requested_scopes])) if approve else list(app.scopes)
        entities = imposed if imposed is not None else app.legal_entities
        values["scopes"] = " ".join(scopes)
        values["legal_entities"] = None if entities is None else " ".join(entities)
        self.clients.set_grants(app.client_id, scopes, entities)
        verdict = "approve" if approve else "reject"
        with self.engine.begin() as conn:
            conn.execute(apps.update().where(apps.c.id == app_id).values(**values))
            if app.requested_plan is not None:
                self.audit.record(conn, admin.email, "application", app_id, f"{verdict}_plan",
                                  {"plan": (app.plan, app.requested_plan if approve else app.plan)})
            if app.requested_scopes:
                self.audit.record(conn, admin.email, "application", app_id, f"{verdict}_scopes",
                                  {"scopes": (" ".join(app.scopes), " ".join(scopes)),
                                   "requested_scopes": (" ".join(app.requested_scopes), None)})
            if imposed is not None:
                self.audit.record(conn, admin.email, "application", app_id, "restrict_legal_entities",
                                  {"legal_entities": (None if app.legal_entities is None
                                                      else " ".join(app.legal_entities), " ".join(imposed))})

    def plan_of(self, client_id: str) -> str | None:
        """The plan of a portal-registered client (the rate-limit policy asks)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(apps.c.plan).where(apps.c.client_id == client_id)).scalar()

    def _live(self, account: Account, app_id: str) -> App:
        app = self.get(account, app_id)
        if app.revoked:
            raise ProblemError(409, "conflict", "Application revoked", "This application was revoked.",
                               code="revoked")
        return app


def _entities(codes: Sequence[str] | None) -> tuple[str, ...] | None:
    """Legal-entity codes as given in a form (upper-cased, de-duplicated); None or empty = no restriction."""
    cleaned = tuple(dict.fromkeys(c.strip().upper() for c in codes or () if c.strip()))
    bad = [c for c in cleaned if not ENTITY.match(c)]
    if bad:
        raise ProblemError(422, "validation-error", "Validation failed", f"Not legal-entity codes: {', '.join(bad)}.",
                           errors=[FieldError(pointer="legal_entities", detail="codes like US01, 2–12 letters or "
                                              "digits")], code="invalid_legal_entities")
    return cleaned or None


def _app(row: sa.RowMapping) -> App:
    return App(id=row["id"], account_id=row["account_id"], name=row["name"], client_id=row["client_id"],
               scopes=tuple(row["scopes"].split()), plan=row["plan"], requested_plan=row["requested_plan"],
               revoked=row["revoked_at"] is not None, requested_scopes=tuple((row["requested_scopes"] or "").split()),
               legal_entities=None if row["legal_entities"] is None else tuple(row["legal_entities"].split()))
