"""A small governed app for the limit policies' tests: real chain, real policies, a header as the caller."""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
import msgspec
from litestar import Litestar, Router, get

from gateway.errors import EXCEPTION_HANDLERS
from policies.base import Policy, Principal, RequestContext
from policies.bindings import Bindings
from policies.chain import PolicyChain
from policies.quota import Quota, UsageMeter
from policies.rate_limit import RateLimit, RateLimitConfig
from policies.spike_arrest import SpikeArrest, SpikeArrestPolicyConfig
from policies.stores import CounterStore

__all__ = ["ClientHeader", "bindings_with", "client", "limited_app"]

_APIS = {"system.crm": {"title": "CRM", "layer": "system", "owner": "t"},
         "system.erp": {"title": "ERP", "layer": "system", "owner": "t"}}


class _NoConfig(msgspec.Struct, frozen=True):
    pass


class ClientHeader(Policy[_NoConfig]):
    """Stands in for authentication: the caller is whoever `X-Client` names."""

    name: ClassVar[str] = "auth"
    order: ClassVar[int] = 1450

    def __init__(self) -> None:
        super().__init__(_NoConfig())

    async def on_request(self, ctx: RequestContext) -> None:
        cid = ctx.request.headers.get("x-client", "c1")
        ctx.principal = Principal(subject=cid, client_id=cid, issuer="test", scopes=frozenset())


def bindings_with(**extra: Any) -> Bindings:
    apis = {k: dict(v) for k, v in _APIS.items()}
    for api, spike in extra.pop("spike_arrest", {}).items():
        apis[api]["spike_arrest"] = spike
    return msgspec.convert({"format_version": 2, "apis": apis, **extra}, Bindings)


def limited_app(bindings: Bindings, store: CounterStore) -> tuple[Litestar, UsageMeter]:
    meter = UsageMeter(store)

    def policies_for(api: str) -> list[Policy[Any]]:
        config = RateLimitConfig(api=api, plans=bindings.plans, default_plan=bindings.default_plan,
                                 consumers=bindings.consumers)
        chain: list[Policy[Any]] = [ClientHeader(), RateLimit(config, store, meter), Quota(config, store, meter)]
        spike = bindings.apis[api].spike_arrest
        if spike is not None:
            chain.append(SpikeArrest(SpikeArrestPolicyConfig(api=api, limit=spike), store, meter))
        return chain

    @get("/ping", operation_id="ping", sync_to_thread=False)
    def ping() -> dict[str, str]:
        return {"ok": "yes"}

    routers = [Router(path=f"/{api.replace('.', '/')}/v1", route_handlers=[ping], opt={"api": api})
               for api in _APIS]
    app = Litestar(route_handlers=routers, middleware=[PolicyChain(bindings, policies_for)],
                   exception_handlers=EXCEPTION_HANDLERS)
    return app, meter


def client(app: Litestar) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
