"""The shape of every policy, after Kong's plugins: a config Struct and phase hooks.

A policy runs in front of governed routes (those whose router carries an `api` opt).
`order` fixes execution — higher runs first on the request and last on the response
— never the order of files. A hook stops a request by raising `ProblemError`; the
gateway renders it as problem+json, so no policy formats an error itself.
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

import msgspec
from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp

from foundation.identity import Principal, RequestContext, RouteInfo

__all__ = ["Policy", "Principal", "RequestContext", "RouteInfo"]

C = TypeVar("C", bound=msgspec.Struct)


class Policy(Generic[C]):
    """Base of every policy; subclasses set `name`, `order` and override the hooks they need."""

    name: ClassVar[str]
    order: ClassVar[int]

    def __init__(self, config: C) -> None:
        self.config = config

    async def on_request(self, ctx: RequestContext) -> None:
        """Before the handler; raise `ProblemError` to stop the request."""

    async def on_response(self, ctx: RequestContext, status: int, headers: MutableScopeHeaders) -> None:
        """When the response starts: add or change headers only."""

    def wrap(self, ctx: RequestContext, app: ASGIApp) -> ASGIApp:
        """Wrap the downstream app for this request — to answer itself (an idempotent replay) or to see
        the response body (recording it). Most policies leave it as it is."""
        return app
