"""HubSpot (CRM) system API: CRM v3 client, mapping, CRM routes and signed webhooks; its portal simulator is in
`simulator/`."""

from system_apis.hubspot.api import HubSpotCrm, create_router, create_systems
from system_apis.hubspot.client import BASE_URL, HubSpotClient
from system_apis.registry import VendorPackage

__all__ = ["BASE_URL", "VENDOR", "HubSpotClient", "HubSpotCrm", "create_router", "create_systems"]

VENDOR = VendorPackage(name="hubspot", domains=("crm",), base_url=BASE_URL, create_router=create_router,
                       simulator="system_apis.hubspot.simulator:HubSpotSimulator", order=11,
                       create_systems=create_systems)
"""The crm vendor hubspot, found through the `psconnect.vendors` entry point (pyproject.toml)."""
