"""Xero (ERP for small legal entities): Accounting + Projects client, mapping and routes; simulator in `simulator/`.

One connection is one Xero organisation (``xero-tenant-id``) and one legal entity. Time is posted as
summarised lines (``GET /system/erp/v1/capabilities`` answers ``summarised``; see `_summary`).

Fidelity — what the tests check against Xero's published documents (``spec/``: XeroAPI/Xero-OpenAPI
``xero-accounting.openapi.yaml`` and ``xero-projects.openapi.yaml``, MIT, ``spec/xero.LICENSE``): every
request the adapter sends (path and method are operations of the documents, query parameters declared,
``xero-tenant-id`` and ``Idempotency-Key`` declared and sent, bodies valid against the request schemas) and
every simulator answer with a declared status (body valid against the response schema; 204 without a body):
Organisation, Contacts, Invoices (also by id, and ``If-Modified-Since``), CreditNotes, Payments, Accounts,
TrackingCategories (+ Options), Projects, Tasks, Time (list, create, read, update) and ProjectsUsers; the bills
(``ACCPAY``) and supplier credit notes (``ACCPAYCREDIT``) expenses are posted as, created by ``PUT`` with
``summarizeErrors=false`` (`_expenses`, `_expense_mapping`). Invoice changes can also arrive by Xero's signed
webhook (`webhooks.py`), which starts the receivables read-back at once.

What rests only on Xero's documentation (the documents do not describe it):

- the token endpoint ``https://identity.xero.com/connect/token`` (only named as the ``tokenUrl``), 30-minute
  access tokens, single-use rotating refresh tokens and the 30-minute grace period of a retired one
  (https://developer.xero.com/documentation/guides/oauth2/auth-flow/);
- the limits (60 calls a minute and 5,000 a day per tenant, 429 with ``Retry-After`` and
  ``X-Rate-Limit-Problem``, ``X-MinLimit-Remaining`` / ``X-DayLimit-Remaining``)
  (https://developer.xero.com/documentation/guides/oauth2/limits/);
- the idempotency semantics (same key → the first answer, at most 128 characters)
  (https://developer.xero.com/documentation/guides/idempotent-requests/idempotency/);
- error bodies of 401/403/404/429 and the ValidationException envelope's details
  (https://developer.xero.com/documentation/api/accounting/responsecodes), the ``where`` filter syntax
  (https://developer.xero.com/documentation/api/accounting/requests-and-responses), 100 records per
  Accounting page, the period lock date refusing earlier documents and time, the per-element answer of
  ``summarizeErrors=false``, ``where`` with ``OR`` and ``DateTime(…)``.
"""

import sqlalchemy as sa
from litestar import Router

from system_apis.registry import Connection, VendorPackage, WebhookSinks
from system_apis.xero._defaults import DEFAULT_CODE, tenant_id
from system_apis.xero.api import XeroErp, create_router, create_systems
from system_apis.xero.client import BASE_URL, XeroClient
from system_apis.xero.webhooks import webhook_router


def simulated_connection(connection: Connection, legal_entities: tuple[str, ...]) -> Connection:
    """The simulator's organisation of the entity the connection serves, and the app and first refresh token
    it accepts, where the file names none (one Xero organisation is one legal entity)."""
    code = connection.credentials.get("code") or (legal_entities[0] if legal_entities else DEFAULT_CODE)
    return connection.filled({"client_id": "psconnect", "client_secret": "sim-secret", "refresh_token": "sim-token",
                              "code": code, "webhook_key": "sim-webhook-key"}, tenant=tenant_id(code))


def create_webhooks(connection: Connection, engine: sa.Engine, sinks: WebhookSinks, *,
                    public_base_url: str | None) -> Router | None:
    """The invoice webhook of one Xero organisation, signed with the app's webhook key (`webhook_key`)."""
    key = connection.credentials.get("webhook_key")
    if not key:
        return None
    return webhook_router(webhook_key=key, sink=sinks.invoices_changed, path=f"/webhooks/{connection.name}")


__all__ = ["BASE_URL", "VENDOR", "XeroClient", "XeroErp", "create_router", "create_systems"]

VENDOR = VendorPackage(name="xero", domains=("erp",), base_url=BASE_URL, create_router=create_router,
                       simulator="system_apis.xero.simulator:XeroSimulator", order=7, create_systems=create_systems,
                       create_webhooks=create_webhooks, simulated_connection=simulated_connection)
"""The erp vendor xero, found through the `psconnect.vendors` entry point (pyproject.toml)."""
