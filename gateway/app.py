"""Assembles the gateway: policies in front of the system, process and OAuth routes.

`create_gateway()` builds everything from settings and returns a `Gateway` holding
the ASGI app and the runtime parts tests and the CLI reach for (simulators, the
OAuth server, stores). Nothing starts until the ASGI lifespan runs: then tables
are created, the demo firm's clients seeded and DBOS launched on the server's own
event loop, so workflows recovered after a crash run beside live requests.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import sqlalchemy as sa
from dbos import DBOS
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.types import ASGIApp

from experience_apis.audit.api import audit_router
from experience_apis.dashboards.api import dashboards_router
from experience_apis.dashboards.store import DashboardStore
from experience_apis.subscriptions.api import subscriptions_router
from experience_apis.subscriptions.dispatcher import Dispatcher
from experience_apis.subscriptions.store import SubscriptionStore
from experience_apis.workbench.api import workbench_router
from experience_apis.workbench.store import WorkbenchStore
from foundation import tracing
from foundation.audit import AuditLog
from foundation.clock import utcnow
from foundation.db import create_engine, metadata
from foundation.http_client import CycleFreeClient
from foundation.retry import RetryPolicy
from foundation.workflow_queue import WORK_QUEUE, run_on_workers
from gateway.allow import repair_options_allow
from gateway.body_deadline import BodyDeadline
from gateway.docs import docs_router
from gateway.errors import EXCEPTION_HANDLERS
from gateway.executors import Executors
from gateway.failover import gateway_client
from gateway.health import health_router
from gateway.metrics_route import metrics_router
from gateway.oauth import OAuth
from gateway.observability import ObservedApp, configure_logging
from gateway.openapi import ApiEntry, catalog
from gateway.policy_runtime import PolicyRuntime
from gateway.processes import Processes
from gateway.scheduler import Scheduler
from gateway.schedules import load_schedules
from gateway.settings import Settings, load_settings
from gateway.upstream import UpstreamPool, upstream_routers
from gateway.usage import UsageRecorder
from gateway.vendor_webhooks import vendor_webhook_routers
from gateway.vendors import VendorRuntime, build_vendors
from policies.bindings import Bindings, load_bindings, scope_needs_approval
from policies.chain import PolicyChain
from policies.cors import litestar_cors
from policies.failure_throttle import FailureThrottle
from process_apis.exchange_rates import DEFAULT_TABLE as DEFAULT_RATE_TABLE
from process_apis.exchange_rates import RateBook, RateTable
from process_apis.registry import discover
from system_apis.connections import load_intercompany
from system_apis.grants import DIRECTORY_STATE_KEY, ErpDirectory
from system_apis.registry import installed
from web.console.routes import CONSOLE_SCOPES, console_router
from web.portal.accounts import Accounts, upgrade_schema
from web.portal.apps import Apps
from web.portal.mail import Mailer
from web.portal.routes import portal_router
from web.portal.webhooks import webhooks_router
from web.sessions import WebSessions

__all__ = ["SERVICE_SCOPES", "Gateway", "ServiceToken", "create_app", "create_gateway", "create_tables",
           "freeze_heap_after_startup", "settle_heap"]

log = logging.getLogger("psconnect.gateway")

SERVICE_SCOPES = ("system.crm:read", "system.erp:read", "system.erp:write", "system.psa:read", "system.psa:write",
                  "system.time:read", "system.hr:read")
"""What the process APIs' service identity may do: read CRM, time and HR; write ERP and PSA."""


class ServiceToken:
    """The process APIs' own access token, re-issued shortly before it expires."""

    def __init__(self, oauth: OAuth, client_id: str, scopes: tuple[str, ...], ttl: int) -> None:
        self._oauth, self._client_id, self._scopes, self._ttl = oauth, client_id, scopes, ttl
        self._token = ""
        self._renew_at = 0.0

    async def __call__(self) -> str:
        if time.monotonic() >= self._renew_at:
            self._token = self._oauth.issue_service_token(self._client_id, self._scopes)
            self._renew_at = time.monotonic() + max(self._ttl - 30, self._ttl / 2)
        return self._token


@dataclass
class Gateway:
    settings: Settings
    engine: sa.Engine
    bindings: Bindings
    oauth: OAuth
    policies: PolicyRuntime
    vendors: dict[str, VendorRuntime]
    processes: Processes
    scheduler: Scheduler
    litestar: Litestar
    app: ASGIApp
    internal_http: httpx.AsyncClient

    def simulator(self, domain: str, legal_entity: str | None = None) -> Any:
        """The in-process simulator of the domain's account serving `legal_entity` (the default account's)."""
        runtime = self.vendors[domain]
        sim = runtime.simulator if legal_entity is None else runtime.for_entity(legal_entity).simulator
        if sim is None:
            raise LookupError(f"the {domain} vendor is remote; drive its simulator over /__sim__")
        return sim


def _dbos_config(settings: Settings) -> dict[str, Any]:
    # The notification listener polls (SQLite) every 0.1 s rather than DBOS's 1 s: a workflow waiting on an event
    # or a message wakes sooner, and shutting down no longer waits out a second-long sleep of that thread.
    return {"name": "psconnect", "system_database_url": settings.workflow_database_url,
            "application_version": "psconnect-1", "log_level": "WARNING",
            "scheduler_polling_interval_sec": 5.0,  # how soon a pause or resume reaches every worker
            "notification_listener_polling_interval_sec": 0.1}


def create_gateway(settings: Settings | None = None, *, bindings: Bindings | None = None,
                   retry: RetryPolicy | None = None, vendor_retry: RetryPolicy | None = None,
                   extra_routes: list[Router] | None = None) -> Gateway:
    """Build the gateway. `retry` paces the process steps, `vendor_retry` each system API's vendor calls."""
    settings = settings or load_settings()
    bindings = bindings or load_bindings()
    configure_logging()
    tracing.configure()  # OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set; nothing otherwise
    logging.getLogger("httpx").setLevel(logging.WARNING)
    engine = create_engine(settings.database_url)
    role = settings.role
    run_on_workers(role != "all")  # apart, every workflow start goes onto the work queue (foundation/workflow_queue)
    # A worker serves no system API: it reaches the vendors through the gateways.
    vendors = {} if role == "worker" else build_vendors(settings, retry=vendor_retry, engine=engine)
    for vendor_client in {id(c.client): c.client for v in vendors.values() for c in v.connections.values()}.values():
        tracing.instrument_client(vendor_client)  # the vendor HTTP call's span; a no-op unless tracing is on
    oauth_http = CycleFreeClient(timeout=httpx.Timeout(5.0))
    oauth = OAuth(settings, engine, http=oauth_http)

    # The portal's applications carry the plan their consumer subscribed to; their sensitive scopes wait for an admin.
    apps = Apps(engine, oauth.clients, needs_approval=lambda scope: scope_needs_approval(bindings, scope))
    trail = AuditLog(engine)  # the audit policy records every write; the audit API reads it
    policy_runtime = PolicyRuntime(settings, bindings, oauth, subscriptions=apps.plan_of, audit=trail)
    # Failed client authentications and portal sign-ins, counted in the limits' store (Redis when shared).
    throttle = FailureThrottle(policy_runtime.limits, trusted_proxies=bindings.trusted_proxies)
    oauth.throttle = throttle

    processes = Processes.create(demo_calendar=settings.seed_demo and settings.embedded)
    upstream_pool = UpstreamPool()  # remote upstream routes (gateway/upstream.py)
    usage = UsageRecorder(settings.redis_url, settings.redis_prefix)
    litestar: Litestar
    webhooks = SubscriptionStore(engine)  # subscriptions and their deliveries; the dispatcher sends them
    dispatcher = Dispatcher(webhooks)

    def api_catalog() -> list[ApiEntry]:
        """The catalog with each system API's vendor accounts per legal entity (the portal shows them)."""
        backing = {f"system.{domain}": runtime.backing() for domain, runtime in vendors.items()}
        return [msgspec.structs.replace(e, backed_by=backing[e.name]) if e.name in backing else e
                for e in catalog(litestar, bindings)]

    async def whole_app(scope: Any, receive: Any, send: Any) -> None:  # bound below; routes need the client first
        await app(scope, receive, send)

    internal_http = CycleFreeClient(transport=httpx.ASGITransport(app=whole_app), base_url="http://psconnect.internal",
                                    timeout=httpx.Timeout(60.0))
    tracing.instrument_client(internal_http)  # the in-process hops carry the step's span as traceparent
    # Apart, a worker's steps call the gateways over HTTP with the service token, as an external caller would.
    process_http: httpx.AsyncClient = internal_http
    if role == "worker":
        process_http = gateway_client(settings.gateway_urls, 60.0)
        tracing.instrument_client(process_http)
    accounts = Accounts(engine, base_url=settings.issuer)  # roles come from an admin, never from an email
    web = WebSessions(accounts)
    # The schedule file is checked before anything starts: a bad file stops start-up naming file, entry and field.
    schedules = load_schedules({n: h.package.schedulable for n, h in processes.hosted.items()},
                               Path(settings.schedules_file) if settings.schedules_file else None)
    scheduler = Scheduler(schedules, processes, engine, trail, enabled=settings.schedules_enabled)
    console = console_router(web, internal_http, ServiceToken(oauth, settings.console_client_id, CONSOLE_SCOPES,
                                                              settings.token_ttl), schedules=scheduler)
    portal = portal_router(web, apps, usage, api_catalog, token_url=f"{settings.issuer}/oauth2/token",
                           mailer=Mailer(settings.smtp_url, settings.smtp_from), throttle=throttle)
    token = ServiceToken(oauth, settings.service_client_id, SERVICE_SCOPES, settings.token_ttl)
    # The system APIs attribute records to legal entities through the ERP, read as the service (system_apis/grants.py).
    entity_directory = ErpDirectory(internal_http, token)
    executors = Executors(settings, engine)  # DBOS executor id; on PostgreSQL a lease per process
    probes = health_router(engine, settings.redis_url, role, lambda: executors.launched)
    # Group-currency reporting: each entity's ERP rates, else the configured table (process_apis/exchange_rates.py).
    rate_table = RateTable.load(Path(settings.rate_table) if settings.rate_table else DEFAULT_RATE_TABLE)
    rates = RateBook.create(engine, internal_http, token, rate_table)
    public: list[Any] = [] if role == "worker" else [  # a worker serves its probes and its metrics only
        *oauth.routes, *{id(v): v.router for v in vendors.values()}.values(),
        *processes.routers(), workbench_router(WorkbenchStore(engine)),
        dashboards_router(DashboardStore(engine), rates), audit_router(trail),
        subscriptions_router(webhooks, http_loopback=settings.webhooks_http_loopback),
        # API catalog, published OpenAPI documents and Swagger UI (ungoverned; gateway/docs.py).
        docs_router(bindings), portal, console,
        webhooks_router(web, apps, webhooks, http_loopback=settings.webhooks_http_loopback),
        *upstream_routers(settings.upstreams, upstream_pool, bindings.apis),
        # Signed vendor events (a CRM's won deals), outside the chain (gateway/vendor_webhooks.py).
        *vendor_webhook_routers(vendors, engine, processes, public_base_url=settings.issuer),
        *(extra_routes or [])]
    litestar = Litestar(
        route_handlers=[probes, metrics_router(), *public],
        middleware=[PolicyChain(bindings, policy_runtime.policies_for)],
        exception_handlers=EXCEPTION_HANDLERS,
        cors_config=litestar_cors(bindings.cors, settings.cors_origins),  # preflights answered before auth
        openapi_config=None,
        debug=False,
        state=State({DIRECTORY_STATE_KEY: entity_directory}),
    )
    repair_options_allow(litestar)  # Allow names every method of a path served by two routers
    app = ObservedApp(BodyDeadline(litestar, settings.body_read_timeout), usage)
    gateway = Gateway(settings=settings, engine=engine, bindings=bindings, oauth=oauth, policies=policy_runtime,
                      vendors=vendors,
                      processes=processes, scheduler=scheduler, litestar=litestar, app=app, internal_http=internal_http)
    transfer = load_intercompany(Path(settings.connections_file) if settings.connections_file else None)
    processes.configure(engine, process_http, token, retry, rate_table, transfer.markup)

    async def startup() -> None:
        metadata.create_all(engine)
        await policy_runtime.startup()
        await usage.start()
        oauth.create_tables()
        oauth.clients.ensure(settings.service_client_id, "psconnect process APIs", SERVICE_SCOPES, None)
        oauth.clients.ensure(settings.console_client_id, "psconnect operations console", CONSOLE_SCOPES, None)
        DBOS(config=executors.configure(_dbos_config(settings)))  # type: ignore[arg-type]
        if role == "gateway":
            DBOS.listen_queues([])  # a gateway queues workflows and runs none: the workers take them
        launched_at = utcnow()
        executors.launch()  # takes the lease, DBOS.launch(), then recovers dead executors' workflows
        await DBOS.register_queue_async(WORK_QUEUE, polling_interval_sec=0.5)
        resumed = await processes.resume()
        if role != "gateway":
            await dispatcher.start()  # webhook deliveries, off the request path (experience_apis/subscriptions)
        caught_up = await asyncio.to_thread(scheduler.start, launched_at)  # after DBOS is up: schedules live there
        portal_start_up(settings, engine, accounts)
        log.info("gateway started", extra={"fields": {"event": "startup", "issuer": settings.issuer,
                                                      "embedded": settings.embedded, "role": role,
                                                      "resumed_runs": resumed, "schedules_caught_up": caught_up}})

    async def shutdown() -> None:
        await _logged_if_slow("webhook dispatcher", dispatcher.stop())
        await _logged_if_slow("executor lease", asyncio.to_thread(executors.stop))
        # Off the event loop: DBOS joins its background threads, which may need this loop to finish.
        await _logged_if_slow("DBOS", asyncio.to_thread(DBOS.destroy, destroy_registry=False))
        # DBOS made its (now shut down) pool this loop's default executor; a gateway started again on the same
        # loop (a test, an in-process restart) would get "cannot schedule new futures after shutdown".
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(thread_name_prefix="psconnect"))
        await internal_http.aclose()
        await process_http.aclose()
        await upstream_pool.aclose()
        await _logged_if_slow("limit and idempotency stores", policy_runtime.shutdown())
        await _logged_if_slow("usage counters", usage.stop())
        await oauth_http.aclose()
        accounts = {id(c): c for v in vendors.values() for c in v.connections.values()}  # shared across domains
        for account in accounts.values():
            await account.client.aclose()
        engine.dispose()

    litestar.on_startup.append(startup)
    litestar.on_shutdown.append(shutdown)
    return gateway


SLOW_SHUTDOWN_STEP = 2.0
"""Seconds after which a shutdown step is logged: the steps join threads and close connections that a loaded host
or a vanished peer can hold up, and a shutdown that overruns its grace period must say which step held it."""


async def _logged_if_slow(step: str, done: Awaitable[None]) -> None:
    began = time.monotonic()
    await done
    took = time.monotonic() - began
    if took > SLOW_SHUTDOWN_STEP:
        log.warning("slow shutdown step", extra={"fields": {"event": "shutdown_step_slow", "step": step,
                                                            "seconds": round(took, 3)}})


def portal_start_up(settings: Settings, engine: sa.Engine, accounts: Accounts) -> None:
    """Bring an older portal schema up to date; warn about ignored role settings; print the first-admin link."""
    upgrade_schema(engine)
    for name, value in (("PSCONNECT_PORTAL_ADMINS", settings.portal_admins),
                        ("PSCONNECT_OPERATIONS_USERS", settings.operations_users)):
        if value:
            log.warning(f"{name} is ignored: roles are granted by a portal admin or `psconnect accounts grant`",
                        extra={"fields": {"event": "ignored_setting", "setting": name}})
    link = accounts.enrolment_link()
    if link is not None:
        log.warning("no portal admin yet: open this one-time link, signed in, to become the first admin",
                    extra={"fields": {"event": "admin_enrolment_link", "link": link}})


def create_tables(settings: Settings) -> None:
    """Create the shared tables once, in the parent, before the workers start.

    Each worker's start-up runs `metadata.create_all` (check, then create). On a fresh
    PostgreSQL database N workers raced on it: one failed on a duplicate type, and
    uvicorn then stopped every worker. With the tables in place each check finds them.
    (DBOS serializes its own migrations with an advisory lock.)
    """
    discover()  # import every hosted process package, so the tables they declare are on the metadata too
    installed()  # and every vendor package (Xero keeps its rotated refresh tokens and line compositions here)
    engine = create_engine(settings.database_url)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()


YOUNG_COLLECTION_THRESHOLD = 10_000
"""Net allocations between two collections of the youngest generation (CPython's default is 700).

At 700, a page of 2,000 entries or a posting batch of 1,000 lines (some 40,000 objects while it is read and
priced) lived through dozens of young collections and was promoted to the oldest generation before it was
dropped; those promotions then started a full collection over the whole heap every few pages. In a month-end
run of 3,000 workers the collector took 8 s at 700 and 2 s at 10,000, with the same peak memory (issue 15).
"""


def settle_heap() -> int:
    """Collect, freeze what is left and raise the young generation's threshold; the number of objects frozen.

    Issue 15: the 180–300 ms p99 tail at peak was the cyclic collector walking the large,
    long-lived start-up heap (imported modules, the Litestar app graph, SQLAlchemy metadata,
    DBOS); `gc.freeze()` after start-up cut it to 50 ms. A collection first, so only what is
    alive then is frozen (garbage of the start-up itself is freed, not kept). For a server
    process only: a process building many gateways (the tests) would keep every frozen one.
    """
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)
    return gc.get_freeze_count()


def freeze_heap_after_startup(gateway: Gateway) -> None:
    """Settle the heap (`settle_heap`) once the gateway has started."""

    def freeze() -> None:
        frozen = settle_heap()
        log.info("start-up heap frozen", extra={"fields": {"event": "gc_freeze", "frozen_objects": frozen}})

    gateway.litestar.on_startup.append(freeze)  # after every start-up hook registered before it


def create_app() -> ASGIApp:
    """Worker entry point (uvicorn factory): a whole gateway from the environment, its start-up heap frozen."""
    gateway = create_gateway()
    freeze_heap_after_startup(gateway)
    return gateway.app
