"""Certinia PSA wire client: the Salesforce platform REST API (v60.0) of the org Certinia is installed in.

Certinia (formerly FinancialForce) PSA is a managed package (namespace ``pse__``) on the
Salesforce platform, so there is no Certinia-specific API: its objects are read with SOQL
(``/services/data/vNN.0/query``, ``nextRecordsUrl`` paging) and written as sObjects
(external-id upsert ``PATCH /sobjects/{type}/{Field}/{value}``), exactly as Salesforce's own
objects. The wire protocol is shared with the Salesforce CRM package through
`system_apis._internal.force_rest`; this module names it certinia and adds the org's
session (OAuth 2.0 client credentials against ``/services/oauth2/token``).

Limits: an org's daily API allocation (Enterprise Edition: 100,000 a rolling 24 h plus
per-licence additions) and 25 concurrent long-running requests; `RATE_LIMIT` paces our
side to the allocation so a month-end burst cannot spend the whole org's quota, which
the firm's own Salesforce users share.
https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Final

import httpx

from foundation.retry import RetryPolicy
from system_apis._internal.force_rest import ForceRestClient, ForceSession
from system_apis._internal.http import Sleep
from system_apis.pacing import VendorBudget

__all__ = ["BASE_URL", "RATE_LIMIT", "VENDOR", "CertiniaClient", "session_from"]

VENDOR: Final = "certinia"
BASE_URL: Final = "https://meridian-ca.my.salesforce.com"
RATE_LIMIT: Final = VendorBudget(100_000, 86_400.0)
"""The org's daily API allocation (Enterprise Edition base), a rolling 24 hours."""


def session_from(http: httpx.AsyncClient, credentials: Mapping[str, str], *,
                 clock: Callable[[], float] | None = None) -> ForceSession | None:
    """An OAuth session when the connection names a connected app (client_id + client_secret), else None."""
    client_id, secret = credentials.get("client_id"), credentials.get("client_secret")
    if not client_id or not secret:
        return None
    seconds = float(credentials.get("session_seconds") or 7200)
    root = "" if http.base_url.host else BASE_URL
    if clock is None:
        return ForceSession(VENDOR, http, client_id=client_id, client_secret=secret, session_seconds=seconds,
                            root=root)
    return ForceSession(VENDOR, http, client_id=client_id, client_secret=secret, session_seconds=seconds,
                        clock=clock, root=root)


class CertiniaClient(ForceRestClient):
    """The org's REST API (see `ForceRestClient`), errors and breaker named certinia."""

    def __init__(self, http: httpx.AsyncClient, *, token: str = "sim-token", session: ForceSession | None = None,
                 retry: RetryPolicy | None = None, sleep: Sleep = asyncio.sleep,
                 budget: VendorBudget | None = RATE_LIMIT) -> None:
        super().__init__(VENDOR, http, base_url=BASE_URL, token=token, session=session, retry=retry, sleep=sleep,
                         budget=budget)
