"""HubSpot (CRM) system API: CRM v3 client, mapping, CRM routes and signed webhooks; its portal simulator is in
`simulator/`."""

import sqlalchemy as sa
from litestar import Router

from system_apis.hubspot.api import HubSpotCrm, create_router, create_systems
from system_apis.hubspot.client import BASE_URL, HubSpotClient
from system_apis.hubspot.webhooks import webhook_router
from system_apis.registry import Connection, VendorPackage, WebhookSinks

__all__ = ["BASE_URL", "VENDOR", "HubSpotClient", "HubSpotCrm", "create_router", "create_systems"]


def create_webhooks(connection: Connection, engine: sa.Engine, sinks: WebhookSinks, *,
                    public_base_url: str | None) -> Router | None:
    """The closed-won deal webhook of one HubSpot portal, signed with the app's ``client_secret``."""
    secret = connection.credentials.get("client_secret")
    if not secret:
        return None
    return webhook_router(client_secret=secret, sink=sinks.won_deal, engine=engine, path=f"/webhooks/{connection.name}",
                          public_base_url=public_base_url)


def simulated_connection(connection: Connection, legal_entities: tuple[str, ...]) -> Connection:
    """The app secret the embedded webhook checks signatures with, where the file names none."""
    return connection.filled({"client_secret": "sim-secret"})


VENDOR = VendorPackage(name="hubspot", domains=("crm",), base_url=BASE_URL, create_router=create_router,
                       simulator="system_apis.hubspot.simulator:HubSpotSimulator", order=11,
                       create_systems=create_systems, create_webhooks=create_webhooks,
                       simulated_connection=simulated_connection)
"""The crm vendor hubspot, found through the `psconnect.vendors` entry point (pyproject.toml)."""
