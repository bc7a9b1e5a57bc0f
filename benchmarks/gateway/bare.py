"""The benchmark's endpoint and its bare server: the handler alone, no policies, no observability."""

from __future__ import annotations

from litestar import Litestar, Router, post

from contracts.common import Struct

__all__ = ["BODY", "CLIENT_ID", "CLIENT_SECRET", "Order", "bare_app", "orders_router"]

BODY = b'{"sku": "A-1", "quantity": 2}'
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret-not-for-production-0123456789"


class Order(Struct):
    sku: str
    quantity: int


@post("/orders", status_code=200, sync_to_thread=False)
def echo_order(data: Order) -> Order:
    return data


def orders_router(opt: dict[str, str] | None = None) -> Router:
    return Router(path="/bench/v1", opt=opt or {}, route_handlers=[echo_order])


bare_app = Litestar(route_handlers=[orders_router()], openapi_config=None)
