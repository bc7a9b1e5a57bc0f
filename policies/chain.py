"""The policy chain: runs each governed route's policies around its handler.

Governed routes are those whose router carries an `api` opt; the chain for a
handler is resolved once (bindings + policy instances) and cached. Request hooks run
highest `order` first; response hooks run in reverse, Kong-style. A `ProblemError`
from a hook is rendered here, through the same send path, so short-circuited
responses get the same headers and access-log line as any other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import msgspec
from litestar import Request
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from contracts.correlation import correlation_id
from contracts.problems import MEDIA_TYPE, ProblemError
from policies.base import Policy, RequestContext, RouteInfo
from policies.bindings import Bindings, required_scopes

__all__ = ["PolicyChain"]

ChainFactory = Callable[[str], Sequence[Policy[Any]]]


class PolicyChain(ASGIMiddleware):
    """Litestar middleware; `policies_for(api)` builds the ordered policies of one API."""

    def __init__(self, bindings: Bindings, policies_for: ChainFactory) -> None:
        self.bindings = bindings
        self.policies_for = policies_for
        self._cache: dict[tuple[int, str], tuple[RouteInfo, list[Policy[Any]]]] = {}

    def resolve(self, handler: HTTPRouteHandler, method: str, path: str) -> tuple[RouteInfo, list[Policy[Any]]] | None:
        api = handler.opt.get("api")
        if not api:
            return None
        key = (id(handler), method)
        hit = self._cache.get(key)
        if hit is None:
            operation_id = handler.operation_id if isinstance(handler.operation_id, str) else handler.handler_name
            route = RouteInfo(api=api, operation_id=operation_id, method=method, path=path,
                              scopes=required_scopes(self.bindings, api, operation_id, method))
            policies = sorted(self.policies_for(api), key=lambda p: p.order, reverse=True)
            hit = self._cache[key] = (route, policies)
        return hit

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["type"] != ScopeType.HTTP:
            await next_app(scope, receive, send)
            return
        http_scope: HTTPScope = scope
        resolved = self.resolve(cast(HTTPRouteHandler, http_scope["route_handler"]), http_scope["method"],
                                http_scope["path"])
        if resolved is None:
            await next_app(scope, receive, send)
            return
        route, policies = resolved
        ctx = RequestContext(Request(scope, receive), route, correlation_id.get() or "")
        scope["state"]["policy_context"] = ctx

        async def send_with_policies(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for policy in reversed(policies):
                    await policy.on_response(ctx, message["status"], headers)
            await send(message)

        try:
            for policy in policies:
                await policy.on_request(ctx)
        except ProblemError as exc:
            ctx.state["problem"] = exc  # what the response phase (the audit) records of a refusal
            problem = exc.problem
            problem.instance = scope["path"]
            problem.correlation_id = ctx.correlation_id or None
            body = msgspec.json.encode(problem)
            headers = [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
            headers += [(k.lower().encode(), v.encode("latin-1")) for k, v in exc.headers.items()]
            await send_with_policies({"type": "http.response.start", "status": problem.status, "headers": headers})
            await send_with_policies({"type": "http.response.body", "body": body, "more_body": False})
            return
        # A policy may wrap the downstream app (`wrap(ctx, app) -> app`): to answer itself (an idempotent
        # replay) or to see the response body (recording it). Highest order ends up outermost.
        app = next_app
        for policy in reversed(policies):
            app = policy.wrap(ctx, app)
        await app(scope, ctx.request.receive, send_with_policies)
