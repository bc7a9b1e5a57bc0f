"""What every system-API test builds the same way, whatever the vendor.

Each vendor's tests drive its client over the simulator's real wire format and its domain routes in a bare
Litestar app; only the simulator, the client class and the router differ. Those stay in the test files; the
stand-ins and the wiring live here once, so a change to how vendors are tested is made in one place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
from litestar import Litestar, Router
from litestar.testing import AsyncTestClient

from foundation.retry import RetryPolicy
from gateway.errors import EXCEPTION_HANDLERS

__all__ = ["PACE", "Clock", "Sleeps", "asgi", "domain_api", "every_item", "posted_sums", "totals_sums", "vendor_http"]

Sums = dict[str, tuple[Decimal, Decimal, int]]
"""project -> (billable hours, billable amount, billable lines)"""

# Enough attempts to see a retry succeed after two transient faults; tiny backoff, though `Sleeps` never waits.
PACE = RetryPolicy(max_attempts=4, base_delay=0.01)


class Clock:
    """A clock the test moves by hand, for simulators that count requests per time window."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """Stands in for asyncio.sleep: records each wait instead of waiting it out.

    Given a `Clock`, a wait also moves that clock on, as a real sleep would, so a simulator's rate window
    opens again after the client honours its `Retry-After`.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.waits: list[float] = []
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.clock is not None:
            self.clock.now += seconds


def asgi(app: Litestar) -> httpx.ASGITransport:
    """httpx's transport onto an in-process app (a simulator or a test app)."""
    # Litestar's precise ASGI types do not unify with httpx's loose ones; the app is a valid ASGI callable.
    return httpx.ASGITransport(app=app)  # type: ignore[arg-type]


@asynccontextmanager
async def vendor_http(app: Litestar, base_url: str,
                      transport: httpx.AsyncBaseTransport | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client that reaches the simulator `app` at the vendor's real `base_url`.

    `transport`, when given, is used instead of the plain ASGI transport onto `app` (a test that records or
    tampers with exchanges wraps `asgi(app)` itself).
    """
    async with httpx.AsyncClient(transport=transport or asgi(app), base_url=base_url) as http:
        yield http


@asynccontextmanager
async def domain_api(router: Router) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """A test client on a bare app serving one domain router, with the gateway's problem+json handlers."""
    app = Litestar(route_handlers=[router], exception_handlers=EXCEPTION_HANDLERS)
    async with AsyncTestClient(app=app) as client:
        yield client


async def every_item(api: AsyncTestClient[Litestar], path: str, params: dict[str, str | int]) -> list[dict[str, Any]]:
    """Every item of a list, following its cursors."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = await api.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        if not (cursor := response.json().get("next_cursor")):
            return items


def posted_sums(lines: Iterable[dict[str, Any]]) -> Sums:
    """The billable lines of a posted-time listing summed per project: what its totals list should hold."""
    sums: Sums = {}
    for line in lines:
        if line["billable"]:
            hours, amount, count = sums.get(line["project_external_id"], (Decimal(0), Decimal(0), 0))
            sums[line["project_external_id"]] = (hours + Decimal(line["hours"]),
                                                 amount + Decimal(line["amount"]["amount"]), count + 1)
    return sums


def totals_sums(totals: list[dict[str, Any]]) -> Sums:
    """A posted-time totals list in the shape of `posted_sums`; its projects must come in order, once each."""
    projects = [t["project_external_id"] for t in totals]
    assert projects == sorted(set(projects)), projects
    return {t["project_external_id"]: (Decimal(t["billable_hours"]), Decimal(t["billable_amount"]["amount"]),
                                       t["lines"]) for t in totals}
