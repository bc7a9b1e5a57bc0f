"""A deprecated version announces itself with Deprecation, Sunset and Link headers."""

from __future__ import annotations

import datetime as dt

from litestar.datastructures import MutableScopeHeaders

from policies.bindings import Deprecation
from policies.versioning import Versioning, VersioningConfig


async def test_deprecated_version_sends_rfc_headers() -> None:
    policy = Versioning(VersioningConfig(deprecation=Deprecation(
        since=dt.date(2026, 6, 1), sunset=dt.date(2027, 6, 30), successor="/docs/system.crm/v2")))
    headers = MutableScopeHeaders({"type": "http.response.start", "status": 200, "headers": []})
    await policy.on_response(None, 200, headers)  # type: ignore[arg-type]
    assert headers["Deprecation"] == "@1780272000"
    assert headers["Sunset"] == "Wed, 30 Jun 2027 00:00:00 GMT"
    assert headers["Link"] == '</docs/system.crm/v2>; rel="successor-version"'


async def test_current_version_sends_nothing() -> None:
    headers = MutableScopeHeaders({"type": "http.response.start", "status": 200, "headers": []})
    await Versioning(VersioningConfig()).on_response(None, 200, headers)  # type: ignore[arg-type]
    assert "Deprecation" not in headers and "Sunset" not in headers
