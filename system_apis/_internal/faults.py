"""Fault injection shared by every simulator, and the control routes that drive it.

A test (in-process or across processes) says what should go wrong — "the next 5
job writes get 429 with Retry-After: 1", "10% of calls answer 503", "every call
waits 2 s" — and each simulator renders the fault in its vendor's own wire format
(a NetSuite concurrency error is not a Salesforce one). Control routes live under
`/__sim__/` on each simulator so a simulator in another process is driven the same way.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from typing import Annotated, Any, Literal, Protocol

import msgspec
from litestar import Request, Router, delete, get, post
from litestar.params import JSONBody, QueryParameter
from msgspec import Meta

__all__ = ["Fault", "FaultKind", "FaultPlan", "ReceivedRequest", "Simulated", "control_router", "received"]

FaultKind = Literal["rate_limit", "server_error", "slow", "concurrency_limit", "business_error", "timeout"]


class Fault(msgspec.Struct, kw_only=True):
    """One fault rule; matching requests get the fault until `count` runs out."""

    kind: FaultKind
    count: Annotated[int, Meta(ge=1, description="Requests to affect; absent = until cleared.")] | None = None
    rate: Annotated[float, Meta(ge=0, le=1, description="Probability per matching request.")] = 1.0
    method: str | None = None
    path: Annotated[str | None, Meta(description="Regular expression the request path must match.")] = None
    retry_after: Annotated[int, Meta(ge=0)] = 1
    delay: Annotated[float, Meta(ge=0, description="Seconds to wait (slow/timeout).")] = 0.0
    status: Annotated[int, Meta(ge=400, le=599)] = 503
    message: str | None = None


class FaultPlan:
    """The active fault rules of one simulator; the first matching rule wins."""

    def __init__(self, seed: int = 7) -> None:
        self.rules: list[Fault] = []
        self.injected = 0
        self.seen: Counter[tuple[str, str]] = Counter()
        """Requests seen, by (method, path): proves a write was or was not repeated."""
        self._rng = random.Random(seed)

    def add(self, fault: Fault) -> None:
        self.rules.append(fault)

    def clear(self) -> None:
        self.rules.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The fault to apply to this request, if any; consumes one use of its rule."""
        self.seen[(method.upper(), path)] += 1
        for rule in list(self.rules):
            if rule.method and rule.method.upper() != method.upper():
                continue
            if rule.path and not re.search(rule.path, path):
                continue
            if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                continue
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
            self.injected += 1
            return rule
        return None

    async def delay_for(self, fault: Fault) -> None:
        """Slow and timeout faults wait before answering (timeout faults then answer 504)."""
        if fault.kind in ("slow", "timeout") and fault.delay:
            await asyncio.sleep(fault.delay)


class Simulated(Protocol):
    """What the control routes need from a simulator."""

    faults: FaultPlan

    def count(self, record_type: str, external_id: str | None) -> int: ...

    def reset(self) -> None: ...


class ReceivedRequest(msgspec.Struct, frozen=True):
    """A request as a simulator received it, for tests that check what the client sent."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


def received(request: Request[Any, Any, Any]) -> ReceivedRequest:
    return ReceivedRequest(method=request.method.upper(), path=request.url.path,
                           query=dict(request.query_params.items()),
                           headers={k.lower(): v for k, v in request.headers.items()})


class FaultList(msgspec.Struct):
    rules: list[Fault]
    injected: int


class SeenRequest(msgspec.Struct):
    method: str
    path: str
    count: int


class Census(msgspec.Struct):
    record_type: str
    external_id: str | None
    count: int


def control_router(sim: Simulated) -> Router:
    """`/__sim__/faults` (GET/POST/DELETE), `/__sim__/count`, `/__sim__/reset` for one simulator."""

    @get("/faults", sync_to_thread=False)
    def list_faults() -> FaultList:
        return FaultList(rules=sim.faults.rules, injected=sim.faults.injected)

    @post("/faults", sync_to_thread=False)
    def add_fault(data: JSONBody[Fault]) -> FaultList:
        sim.faults.add(data)
        return FaultList(rules=sim.faults.rules, injected=sim.faults.injected)

    @delete("/faults", sync_to_thread=False)
    def clear_faults() -> None:
        sim.faults.clear()

    @get("/count", sync_to_thread=False)
    def count(record_type: Annotated[str, QueryParameter(name="type")],
              external_id: Annotated[str | None, QueryParameter()] = None) -> Census:
        return Census(record_type=record_type, external_id=external_id, count=sim.count(record_type, external_id))

    @get("/requests", sync_to_thread=False)
    def requests(method: Annotated[str | None, QueryParameter()] = None,
                 path: Annotated[str | None, QueryParameter()] = None) -> list[SeenRequest]:
        return [SeenRequest(method=m, path=p, count=n) for (m, p), n in sorted(sim.faults.seen.items())
                if (method is None or m == method.upper()) and (path is None or re.search(path, p))]

    @post("/reset", sync_to_thread=False, status_code=204)
    def reset() -> None:
        sim.reset()

    return Router(path="/__sim__", route_handlers=[list_faults, add_fault, clear_faults, count, requests, reset],
                  include_in_schema=False)
