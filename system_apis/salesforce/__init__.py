"""Salesforce (CRM) system API: REST v60.0 client, mapping and CRM routes; its org simulator is in `simulator/`."""

from system_apis.registry import VendorPackage
from system_apis.salesforce.api import SalesforceCrm, create_router, create_systems
from system_apis.salesforce.client import BASE_URL, SalesforceClient

__all__ = ["BASE_URL", "VENDOR", "SalesforceClient", "SalesforceCrm", "create_router", "create_systems"]

VENDOR = VendorPackage(name="salesforce", domains=("crm",), base_url=BASE_URL, create_router=create_router,
                       create_systems=create_systems,
                       simulator="system_apis.salesforce.simulator:SalesforceSimulator", order=1)
"""The crm vendor salesforce: found through the `psconnect.vendors` entry point (pyproject.toml)."""
