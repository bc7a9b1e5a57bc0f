"""Versioning: a deprecated API version says so on every response.

Headers per RFC 9745 (`Deprecation: @<epoch>`), RFC 8594 (`Sunset: <HTTP-date>`) and
RFC 8288 (`Link: <successor>; rel="successor-version"`), so clients and their
monitoring notice long before the sunset date.
"""

from __future__ import annotations

import calendar
import datetime as dt
from email.utils import format_datetime

import msgspec
from litestar.datastructures import MutableScopeHeaders

from policies.base import Policy, RequestContext
from policies.bindings import Deprecation
from policies.registry import PolicyFactory

__all__ = ["FACTORY", "Versioning", "VersioningConfig"]


class VersioningConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    deprecation: Deprecation | None = None


class Versioning(Policy[VersioningConfig]):
    name = "versioning"
    order = 800

    def __init__(self, config: VersioningConfig) -> None:
        super().__init__(config)
        self._headers: list[tuple[str, str]] = []
        dep = config.deprecation
        if dep is not None:
            since = calendar.timegm(dep.since.timetuple())
            sunset = dt.datetime.combine(dep.sunset, dt.time(), tzinfo=dt.UTC)
            self._headers = [("Deprecation", f"@{since}"), ("Sunset", format_datetime(sunset, usegmt=True))]
            if dep.successor:
                self._headers.append(("Link", f'<{dep.successor}>; rel="successor-version"'))

    async def on_response(self, ctx: RequestContext, status: int, headers: MutableScopeHeaders) -> None:
        for name, value in self._headers:
            headers.add(name, value)


FACTORY = PolicyFactory(name="versioning",
                        build=lambda b: Versioning(VersioningConfig(deprecation=b.binding.deprecation)))
"""Registered in the entry-point group psconnect.policies; the API's `deprecation` block is its setting."""
