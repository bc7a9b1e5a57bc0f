"""Who is calling, as the gateway's policy chain establishes it for one request.

Below every layer so that the policies (which set it) and the experience APIs (which
read it) share the type without importing each other. `policies.base` re-exports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from litestar import Request

__all__ = ["Principal", "RequestContext", "RouteInfo", "principal_of"]


class RouteInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What the bindings resolve for one governed route."""

    api: str
    operation_id: str
    method: str
    path: str
    scopes: tuple[str, ...]


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """The authenticated caller, from a verified access token."""

    subject: str
    client_id: str
    issuer: str
    scopes: frozenset[str]
    legal_entities: frozenset[str] | None = None
    """Legal-entity codes the caller may see; None = unrestricted."""
    token_id: str | None = None
    expires_at: int | None = None


class RequestContext:
    """Per-request state shared by the policies of one chain."""

    __slots__ = ("correlation_id", "principal", "request", "route", "state")

    def __init__(self, request: Request[Any, Any, Any], route: RouteInfo, correlation_id: str) -> None:
        self.request = request
        self.route = route
        self.correlation_id = correlation_id
        self.principal: Principal | None = None
        self.state: dict[str, object] = {}


def principal_of(request: Request[Any, Any, Any]) -> Principal | None:
    """The verified principal the policy chain put on this request; None when there is none."""
    ctx = request.scope.get("state", {}).get("policy_context")
    return ctx.principal if isinstance(ctx, RequestContext) else None
