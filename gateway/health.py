"""`/health/live` and `/health/ready`: is the process alive, and can it do its work now.

An orchestrator restarts a process whose liveness fails and takes a process out of the load
balancer while its readiness fails, so the two ask different things. Liveness is the event
loop answering, nothing more: a database outage must not restart every gateway at once.
Readiness asks what this process cannot work without — PostgreSQL (or the embedded SQLite),
Redis when the limits or idempotency records live there, and DBOS launched — and answers 503
(problem+json naming each failing check) until all three answer. `/health` stays the liveness
answer it always was (`make run`, the tests and older probes ask it). Ungoverned, like
`/health` before: a probe carries no token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgspec
import redis.asyncio as aioredis
import sqlalchemy as sa
from litestar import Response, Router, get

from contracts.problems import Problem, problem_type

__all__ = ["Readiness", "health_router"]

CHECK_TIMEOUT = 2.0
"""Seconds one dependency has to answer before the process counts as not ready."""


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    """`ready` or `not_ready`."""
    role: str
    checks: dict[str, str]
    """Per dependency: `ok`, `not configured`, or why it failed."""


def health_router(engine: sa.Engine, redis_url: str | None, role: str, launched: Callable[[], bool]) -> Router:
    """The probes of one process; `launched` says whether its durable-workflow runtime has started."""
    redis = aioredis.from_url(redis_url, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT) \
        if redis_url else None

    def select_one() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    async def database() -> None:
        await asyncio.to_thread(select_one)

    async def workflows() -> None:
        if not launched():
            raise RuntimeError("DBOS is not launched yet")

    async def check(name: str, probe: Callable[[], Awaitable[object]]) -> tuple[str, str]:
        try:
            await asyncio.wait_for(probe(), CHECK_TIMEOUT)
        except Exception as exc:  # any failure of a dependency is an answer, not a crash of the probe
            return name, f"{type(exc).__name__}: {exc}"[:200]
        return name, "ok"

    @get(["/health", "/health/live"], include_in_schema=False, sync_to_thread=False)
    def live() -> dict[str, str]:
        return {"status": "ok"}

    @get("/health/ready", include_in_schema=False)
    async def ready() -> Response[bytes]:
        checks = dict([await check("database", database),
                       await check("redis", redis.ping) if redis is not None else ("redis", "not configured"),
                       await check("workflows", workflows)])
        ok = all(v in ("ok", "not configured") for v in checks.values())
        body = Readiness(status="ready" if ok else "not_ready", role=role, checks=checks)
        if ok:
            return Response(msgspec.json.encode(body), media_type="application/json")
        failing = ", ".join(f"{k} ({v})" for k, v in checks.items() if v not in ("ok", "not configured"))
        problem = Problem(type=problem_type("not-ready"), title="Not ready", status=503,
                          detail=f"This {role} process cannot serve yet: {failing}.")
        return Response(msgspec.json.encode({**msgspec.to_builtins(problem), "checks": checks}), status_code=503,
                        media_type="application/problem+json")

    return Router(path="/", route_handlers=[live, ready])
