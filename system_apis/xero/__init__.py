"""Xero (ERP for small legal entities) system API: Accounting + Projects client, mapping, routes; see `simulator/`."""

from system_apis.registry import VendorPackage
from system_apis.xero.api import XeroErp, create_router, create_systems
from system_apis.xero.client import BASE_URL, XeroClient

__all__ = ["BASE_URL", "VENDOR", "XeroClient", "XeroErp", "create_router", "create_systems"]

VENDOR = VendorPackage(name="xero", domains=("erp",), base_url=BASE_URL, create_router=create_router,
                       simulator="system_apis.xero.simulator:XeroSimulator", order=7, create_systems=create_systems)
"""The erp vendor xero. Not in the `psconnect.vendors` entry points yet: a second ERP needs routing per legal
entity (the connections file), which the integrator wires in."""
