"""Kantata OX system APIs: the PSA (workspaces as delivery projects, milestone stories, staffing, rate cards,
timesheet decisions) and, for a firm that captures them there, the time system (time entries and expenses).

Its simulator is in `simulator/`.
"""

from system_apis.kantata.api import KantataPsa, KantataTime, create_router, create_systems
from system_apis.kantata.client import BASE_URL, KantataClient
from system_apis.registry import VendorPackage

__all__ = ["BASE_URL", "VENDOR", "KantataClient", "KantataPsa", "KantataTime", "create_router", "create_systems"]

VENDOR = VendorPackage(name="kantata", domains=("psa", "time"), base_url=BASE_URL, create_router=create_router,
                       create_systems=create_systems,
                       simulator="system_apis.kantata.simulator:KantataSimulator", order=3)
"""The psa and time vendor kantata: found through the `psconnect.vendors` entry point (pyproject.toml)."""
