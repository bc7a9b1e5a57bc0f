"""BambooHR (HR) system API: v1 client, mapping and HR routes; its account simulator is in `simulator/`."""

from system_apis.bamboohr.api import BambooHRHr, create_router, create_systems
from system_apis.bamboohr.client import BASE_URL, BambooHRClient
from system_apis.registry import VendorPackage

__all__ = ["BASE_URL", "VENDOR", "BambooHRClient", "BambooHRHr", "create_router", "create_systems"]

VENDOR = VendorPackage(name="bamboohr", domains=("hr",), base_url=BASE_URL, create_router=create_router,
                       simulator="system_apis.bamboohr.simulator:BambooHRSimulator", order=12,
                       create_systems=create_systems)
"""The hr vendor bamboohr. Not yet in the `psconnect.vendors` entry points: a second HR vendor needs routing
per legal entity (the connections file) before `resolve` can choose between them."""
