"""The benchmark's governed server: the full gateway with the benchmark endpoint on a governed router.

The route carries the `system.crm` API's chain — JWT verification, scope check, rate limits
and quotas when the bindings declare plans, request validation, idempotency, versioning,
correlation and access log — and, when BENCH_UPSTREAM_URL is set, `/bench-remote/v1` is a
remote-upstream route to that URL with the same chain in front.
"""

from __future__ import annotations

import os

from benchmarks.gateway.bare import CLIENT_ID, CLIENT_SECRET, orders_router
from gateway.app import create_gateway, freeze_heap_after_startup
from gateway.settings import load_settings
from gateway.upstream import UpstreamRoute

__all__ = ["API", "governed_app"]

API = "system.crm"


def governed_app() -> object:
    upstream = os.environ.get("BENCH_UPSTREAM_URL")
    routes = (UpstreamRoute(api=API, prefix="/bench-remote/v1", url=upstream),) if upstream else ()
    settings = load_settings(upstreams=routes, seed_demo=False)
    gateway = create_gateway(settings, extra_routes=[orders_router({"api": API})])

    def register_bench_client() -> None:  # after the gateway's own startup has created the tables
        gateway.oauth.clients.create("gateway benchmark", (f"{API}:read", f"{API}:write"),
                                     client_id=CLIENT_ID, secret=CLIENT_SECRET)

    gateway.litestar.on_startup.append(register_bench_client)
    if os.environ.get("BENCH_GC_FREEZE", "1") == "1":  # as the server's own workers do (gateway.app.create_app)
        freeze_heap_after_startup(gateway)
    return gateway.app
