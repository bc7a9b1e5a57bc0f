"""Who is calling: the principal the gateway's authentication policy put on the request."""

from __future__ import annotations

from typing import Any

from litestar import Request

from policies.base import RequestContext

__all__ = ["actor_of"]


def actor_of(request: Request[Any, Any, Any]) -> str:
    ctx = request.scope.get("state", {}).get("policy_context")
    if isinstance(ctx, RequestContext) and ctx.principal is not None:
        return ctx.principal.subject
    return "anonymous"
