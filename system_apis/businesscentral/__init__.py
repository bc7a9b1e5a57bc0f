"""Dynamics 365 Business Central (ERP) system API: OData v4 client, mapping, routes; simulator in `simulator/`."""

from system_apis.businesscentral.api import BusinessCentralErp, create_router, create_systems
from system_apis.businesscentral.client import BASE_URL, BusinessCentralClient
from system_apis.registry import VendorPackage

__all__ = ["BASE_URL", "VENDOR", "BusinessCentralClient", "BusinessCentralErp", "create_router", "create_systems"]

VENDOR = VendorPackage(name="businesscentral", domains=("erp",), base_url=BASE_URL, create_router=create_router,
                       simulator="system_apis.businesscentral.simulator:BusinessCentralSimulator", order=6,
                       default_token="sim-client:sim-secret", create_systems=create_systems)
"""The erp vendor businesscentral. Not yet in the `psconnect.vendors` entry points: a second erp vendor
needs routing per legal entity (the connections file) before it can be installed beside NetSuite."""
