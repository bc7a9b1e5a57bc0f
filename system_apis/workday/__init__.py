"""Workday (HR) system API: workers and cost centers from the staffing REST API (v6)."""

from system_apis.registry import VendorPackage
from system_apis.workday.api import WorkdayHr, create_router, create_systems
from system_apis.workday.client import BASE_URL, WorkdayClient

__all__ = ["BASE_URL", "VENDOR", "WorkdayClient", "WorkdayHr", "create_router", "create_systems"]

VENDOR = VendorPackage(name="workday", domains=("hr",), base_url=BASE_URL, create_router=create_router,
                       create_systems=create_systems,
                       simulator="system_apis.workday.simulator:WorkdaySimulator", order=4)
"""The hr vendor workday: found through the `psconnect.vendors` entry point (pyproject.toml)."""
