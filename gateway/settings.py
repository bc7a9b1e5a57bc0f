"""Every runtime setting, from environment variables with documented defaults.

Embedded mode needs none of them: SQLite under `PSCONNECT_HOME`, in-memory limits,
in-process simulators. Setting `DATABASE_URL` (PostgreSQL) and `REDIS_URL` moves
state to shared services for several workers and hosts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from gateway.upstream import UpstreamRoute

__all__ = ["ROLES", "ExternalIssuer", "Settings", "load_settings"]

ROLES = ("all", "gateway", "worker")
"""What one `psconnect serve` process does (`--role`); see Settings.role."""


class ExternalIssuer(msgspec.Struct, frozen=True, kw_only=True):
    """An identity provider whose access tokens the gateway also accepts."""

    issuer: str
    jwks_uri: str
    audience: str | None = None


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    home_dir: Annotated[str, Meta(description="PSCONNECT_HOME: state directory (SQLite files, demo credentials).")]
    database_url: Annotated[str, Meta(description="DATABASE_URL: SQLAlchemy URL; SQLite under home by default.")]
    workflow_database_url: Annotated[str, Meta(description="DBOS system database; DATABASE_URL when it is PostgreSQL.")]
    redis_url: Annotated[str | None, Meta(description="REDIS_URL: shared rate-limit/idempotency store.")] = None
    host: str = "127.0.0.1"
    port: int = 8000
    body_read_timeout: Annotated[float, Meta(gt=0, le=300, description=(
        "PSCONNECT_BODY_READ_TIMEOUT: seconds a client has to send a request body; else 408 and closed."))] = 10.0
    public_url: Annotated[str, Meta(description="PSCONNECT_PUBLIC_URL: base URL clients use; the token issuer.")] = ""
    audience: Annotated[str, Meta(description="PSCONNECT_AUDIENCE: `aud` of issued and accepted tokens.")] = "psconnect"
    token_ttl: Annotated[int, Meta(ge=30, le=3600, description="PSCONNECT_TOKEN_TTL: access-token lifetime, s.")] = 300
    key_rotation_days: Annotated[int, Meta(ge=1, description="PSCONNECT_KEY_ROTATION_DAYS")] = 30
    external_issuers: tuple[ExternalIssuer, ...] = ()
    vendor_urls: Annotated[dict[str, str], Meta(
        description="PSCONNECT_VENDOR_URLS: JSON {vendor: base URL}; vendors not named run in-process.")] = {}
    vendor_tokens: Annotated[dict[str, str], Meta(
        description="PSCONNECT_VENDOR_TOKENS: JSON {vendor: API token}; simulators accept any token.")] = {}
    vendor_choice: Annotated[dict[str, str], Meta(description=(
        "PSCONNECT_VENDORS: JSON {domain: vendor}; required for a domain with several installed vendors."))] = {}
    connections_file: Annotated[str | None, Meta(description=(
        "PSCONNECT_CONNECTIONS: the connections file (which vendor account serves each domain for each legal "
        "entity); default: the shipped system_apis/connections.yaml."))] = None
    seed_demo: Annotated[bool, Meta(description="PSCONNECT_SEED_DEMO: seed simulators and demo client.")] = True
    portal_admins: Annotated[tuple[str, ...], Meta(description=(
        "PSCONNECT_PORTAL_ADMINS: no longer grants anything (roles come from an admin or `psconnect accounts`); "
        "accepted and ignored with a warning at start-up."))] = ()
    operations_users: Annotated[tuple[str, ...], Meta(description=(
        "PSCONNECT_OPERATIONS_USERS: no longer grants anything; accepted and ignored with a warning."))] = ()
    smtp_url: Annotated[str | None, Meta(description=(
        "PSCONNECT_SMTP_URL: smtp://[user:password@]host[:port] (STARTTLS when offered) or smtps://…; the "
        "portal's confirmation mail. Unset: the link is written to the server log."))] = None
    smtp_from: Annotated[str, Meta(description="PSCONNECT_SMTP_FROM: sender of the portal's mail.")] = \
        "psconnect@localhost"
    console_client_id: str = "psconnect-console"
    service_client_id: str = "psconnect-internal"
    cors_origins: Annotated[tuple[str, ...], Meta(description=(
        "PSCONNECT_CORS_ORIGINS: comma-separated origins whose pages may call the APIs (the portal's try-it)."))] = ()
    upstreams: Annotated[tuple[UpstreamRoute, ...], Meta(description=(
        "PSCONNECT_UPSTREAMS: JSON list of {api, prefix, url}: APIs proxied to another process or host."))] = ()
    redis_prefix: Annotated[str, Meta(min_length=1, description=(
        "PSCONNECT_REDIS_PREFIX: namespace of the gateway's Redis keys; deployments sharing one Redis differ."))] = \
        "psconnect"
    schedules_file: Annotated[str | None, Meta(description=(
        "PSCONNECT_SCHEDULES_FILE: the schedule file; default gateway/schedules.yaml."))] = None
    rate_table: Annotated[str | None, Meta(description=(
        "PSCONNECT_RATE_TABLE: CSV of daily exchange rates (date,base,quote,rate) for legal entities whose ERP "
        "keeps none; default process_apis/exchange_rates.csv (the demo firm's)."))] = None
    schedules_enabled: Annotated[bool, Meta(description=(
        "PSCONNECT_SCHEDULES_ENABLED: fire the schedules (the file is checked either way). Default on when the "
        "settings come from the process environment (`psconnect serve`), off when a caller passes its own "
        "environment mapping (tests, tools), so a test never meets a fire it did not ask for."))] = False
    limits_store: Annotated[str | None, Meta(description=(
        "PSCONNECT_LIMITS_STORE: `memory` or `redis` counters for rate limits and quotas; "
        "default `redis` when REDIS_URL is set, else `memory`."))] = None

    role: Annotated[Literal["all", "gateway", "worker"], Meta(description=(
        "PSCONNECT_ROLE (`serve --role`): `all` serves HTTP and runs workflows, schedules and deliveries in one "
        "process (the embedded default); `gateway` serves HTTP and policies and queues every workflow start; "
        "`worker` runs the queued workflows, the schedules and the webhook deliveries and serves only its health "
        "and metrics. Apart, they need PostgreSQL and Redis."))] = "all"
    gateway_urls: Annotated[tuple[str, ...], Meta(description=(
        "PSCONNECT_GATEWAY_URL: comma-separated base URLs a worker reaches the gateways at (a load balancer, or "
        "each gateway: a refused connection moves on to the next). Required for `worker`."))] = ()

    webhooks_allow_http: Annotated[bool | None, Meta(description=(
        "PSCONNECT_WEBHOOKS_ALLOW_HTTP: accept http://127.0.0.1 / localhost subscription URLs (tests, demos); "
        "default: only when embedded. Production subscriptions need https."))] = None

    @property
    def webhooks_http_loopback(self) -> bool:
        return self.embedded if self.webhooks_allow_http is None else self.webhooks_allow_http

    @property
    def home(self) -> Path:
        return Path(self.home_dir)

    @property
    def issuer(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings(env: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Read settings from `env` (default: os.environ); keyword overrides win (tests, CLI flags)."""
    e = dict(os.environ if env is None else env)
    home = Path(str(overrides.pop("home", None) or e.get("PSCONNECT_HOME", "var"))).resolve()
    db = str(overrides.pop("database_url", None) or e.get("DATABASE_URL") or f"sqlite:///{home / 'psconnect.sqlite'}")
    if db.startswith("postgres://"):
        db = "postgresql://" + db.removeprefix("postgres://")
    wf_db = db if db.startswith("postgresql") else f"sqlite:///{home / 'workflows.sqlite'}"
    raw: dict[str, object] = {
        "home_dir": str(home),
        "database_url": db,
        "workflow_database_url": wf_db,
        "redis_url": e.get("REDIS_URL") or None,
        "host": e.get("PSCONNECT_HOST", "127.0.0.1"),
        "port": int(e.get("PSCONNECT_PORT", "8000")),
        "body_read_timeout": float(e.get("PSCONNECT_BODY_READ_TIMEOUT", "10")),
        "public_url": e.get("PSCONNECT_PUBLIC_URL", ""),
        "audience": e.get("PSCONNECT_AUDIENCE", "psconnect"),
        "token_ttl": int(e.get("PSCONNECT_TOKEN_TTL", "300")),
        "key_rotation_days": int(e.get("PSCONNECT_KEY_ROTATION_DAYS", "30")),
        "external_issuers": msgspec.json.decode(e.get("PSCONNECT_EXTERNAL_ISSUERS", "[]")),
        "vendor_urls": msgspec.json.decode(e.get("PSCONNECT_VENDOR_URLS", "{}")),
        "vendor_tokens": msgspec.json.decode(e.get("PSCONNECT_VENDOR_TOKENS", "{}")),
        "vendor_choice": msgspec.json.decode(e.get("PSCONNECT_VENDORS", "{}")),
        "portal_admins": tuple(a.strip().lower() for a in e.get("PSCONNECT_PORTAL_ADMINS", "").split(",")
                               if a.strip()),
        "operations_users": tuple(a.strip().lower() for a in e.get("PSCONNECT_OPERATIONS_USERS", "").split(",")
                                  if a.strip()),
        "smtp_url": e.get("PSCONNECT_SMTP_URL") or None,
        "smtp_from": e.get("PSCONNECT_SMTP_FROM") or "psconnect@localhost",
        "connections_file": e.get("PSCONNECT_CONNECTIONS") or None,
        "seed_demo": e.get("PSCONNECT_SEED_DEMO", "1") not in ("0", "false", "no"),
        "cors_origins": tuple(o.strip() for o in e.get("PSCONNECT_CORS_ORIGINS", "").split(",") if o.strip()),
        "upstreams": msgspec.json.decode(e.get("PSCONNECT_UPSTREAMS", "[]")),
        "redis_prefix": e.get("PSCONNECT_REDIS_PREFIX") or "psconnect",
        "limits_store": e.get("PSCONNECT_LIMITS_STORE") or None,
        "webhooks_allow_http": (None if "PSCONNECT_WEBHOOKS_ALLOW_HTTP" not in e
                                else e["PSCONNECT_WEBHOOKS_ALLOW_HTTP"] not in ("0", "false", "no")),
        "schedules_file": e.get("PSCONNECT_SCHEDULES_FILE") or None,
        "rate_table": e.get("PSCONNECT_RATE_TABLE") or None,
        "role": e.get("PSCONNECT_ROLE") or "all",
        "gateway_urls": tuple(u.strip().rstrip("/") for u in e.get("PSCONNECT_GATEWAY_URL", "").split(",")
                              if u.strip()),
        "schedules_enabled": e.get("PSCONNECT_SCHEDULES_ENABLED", "1" if env is None else "0")
        not in ("0", "false", "no"),
    }
    raw.update(overrides)
    if raw["role"] not in ROLES:
        raise ValueError(f"PSCONNECT_ROLE: {raw['role']!r} is not one of {', '.join(ROLES)}")
    settings = msgspec.convert(raw, Settings, strict=False)
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings
