"""Harvest v2 (time capture) system API: time entries, projects, users, uninvoiced report; simulator in `simulator/`."""

from system_apis.harvest.api import HarvestTime, create_router, create_systems
from system_apis.harvest.client import BASE_URL, HarvestClient
from system_apis.registry import VendorPackage

__all__ = ["BASE_URL", "VENDOR", "HarvestClient", "HarvestTime", "create_router", "create_systems"]

VENDOR = VendorPackage(name="harvest", domains=("time",), base_url=BASE_URL, create_router=create_router,
                       create_systems=create_systems,
                       simulator="system_apis.harvest.simulator:HarvestSimulator", order=5)
"""The time vendor harvest: found through the `psconnect.vendors` entry point (pyproject.toml)."""
