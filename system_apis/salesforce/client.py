"""Salesforce REST API (v60.0) client for the CRM package: the shared platform wire protocol, named salesforce.

The wire protocol itself (SOQL paging, sObject reads, external-id upserts, the error list
``[{"message", "errorCode", "fields"}]`` and its mapping onto the `VendorError` tree, OAuth
sessions) lives in `system_apis._internal.force_rest`, shared with Certinia, which runs on
the same platform. https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
"""

from __future__ import annotations

import asyncio
from typing import Final

import httpx

from foundation.retry import RetryPolicy
from system_apis._internal.force_rest import (
    API_PATH,
    API_VERSION,
    ForceRestClient,
    ForceSession,
    QueryBatch,
    UpsertResult,
    decode_json,
    soql_literal,
)
from system_apis._internal.http import Sleep

__all__ = [
    "API_PATH",
    "API_VERSION",
    "BASE_URL",
    "VENDOR",
    "QueryBatch",
    "SalesforceClient",
    "UpsertResult",
    "decode_json",
    "soql_literal",
]

VENDOR: Final = "salesforce"
BASE_URL: Final = "https://meridian.my.salesforce.com"


class SalesforceClient(ForceRestClient):
    """Salesforce REST over `VendorHttp` (see `ForceRestClient`), errors named salesforce."""

    def __init__(self, http: httpx.AsyncClient, *, token: str = "sim-token", session: ForceSession | None = None,
                 retry: RetryPolicy | None = None, sleep: Sleep = asyncio.sleep) -> None:
        super().__init__(VENDOR, http, base_url=BASE_URL, token=token, session=session, retry=retry, sleep=sleep)
