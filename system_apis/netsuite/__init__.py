"""NetSuite (ERP) system API: SuiteTalk REST record client, mapping and routes; its simulator is in `simulator/`."""

from system_apis.netsuite.api import NetSuiteErp, create_router, create_systems
from system_apis.netsuite.client import BASE_URL, NetSuiteClient
from system_apis.registry import VendorPackage

__all__ = ["BASE_URL", "VENDOR", "NetSuiteClient", "NetSuiteErp", "create_router", "create_systems"]

VENDOR = VendorPackage(name="netsuite", domains=("erp",), base_url=BASE_URL, create_router=create_router,
                       create_systems=create_systems,
                       simulator="system_apis.netsuite.simulator:NetSuiteSimulator", order=2)
"""The erp vendor netsuite: found through the `psconnect.vendors` entry point (pyproject.toml)."""
