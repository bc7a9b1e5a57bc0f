"""A small governed app for the request-governance tests: the real chain, real policies, real stores.

Authentication is replaced by a policy that takes the caller from `X-Test-Client`, so the
tests can speak as several consumers without minting tokens; everything after it —
validation, idempotency, the chain's wrapping — is the production code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated, Any

from litestar import Litestar, Response, Router, post, put
from litestar.params import JSONBody, PathParameter

from contracts.common import Struct
from contracts.problems import ProblemError
from gateway.errors import EXCEPTION_HANDLERS
from policies.base import Policy, Principal, RequestContext
from policies.bindings import load_bindings
from policies.chain import PolicyChain

__all__ = ["API", "CallerFromHeader", "Handlers", "Order", "governed_app"]

API = "system.crm"  # any API of the bindings file; the routes below are the tests' own


class Order(Struct):
    sku: str
    quantity: int


class CallerFromHeader(Policy[Any]):
    name = "test_caller"
    order = 1450

    def __init__(self) -> None:
        super().__init__(None)

    async def on_request(self, ctx: RequestContext) -> None:
        client = ctx.request.headers.get("x-test-client")
        if client is None:
            raise ProblemError(401, "unauthorized", "Unauthorized", "X-Test-Client missing")
        ctx.principal = Principal(subject=client, client_id=client, issuer="test", scopes=frozenset({f"{API}:write"}))


class Handlers:
    """Route handlers that count their calls and can be held open or made to fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.fail_next = False
        self.body_size = 0

    def router(self) -> Router:
        @post("/orders", operation_id="orders.create", status_code=201)
        async def create(data: JSONBody[Order]) -> Response[dict[str, Any]]:
            self.calls += 1
            if self.gate is not None:
                await self.gate.wait()
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("handler failed")
            body = {"id": f"ORD-{self.calls}", "sku": data.sku, "quantity": data.quantity, "pad": "x" * self.body_size}
            return Response(body, status_code=201, headers={"Location": f"/orders/ORD-{self.calls}",
                                                             "X-Per-Request": str(self.calls)})

        @put("/orders/{order_id:str}", operation_id="orders.put")
        async def upsert(order_id: Annotated[str, PathParameter()], data: JSONBody[Order]) -> dict[str, Any]:
            self.calls += 1
            return {"id": order_id, "sku": data.sku, "quantity": data.quantity}

        return Router(path="/t/v1", opt={"api": API}, route_handlers=[create, upsert])


def governed_app(handlers: Handlers, policies: Sequence[Policy[Any]]) -> Litestar:
    chain = [CallerFromHeader(), *policies]
    return Litestar(route_handlers=[handlers.router()], middleware=[PolicyChain(load_bindings(), lambda api: chain)],
                    exception_handlers=EXCEPTION_HANDLERS, openapi_config=None)
