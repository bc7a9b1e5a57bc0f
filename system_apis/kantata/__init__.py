"""Kantata OX (PSA) system API: workspaces as delivery projects, milestone stories, external references.

Its simulator is in `simulator/`.
"""

from system_apis.kantata.api import KantataPsa, create_router, create_systems
from system_apis.kantata.client import BASE_URL, KantataClient
from system_apis.registry import VendorPackage

__all__ = ["BASE_URL", "VENDOR", "KantataClient", "KantataPsa", "create_router", "create_systems"]

VENDOR = VendorPackage(name="kantata", domains=("psa",), base_url=BASE_URL, create_router=create_router,
                       create_systems=create_systems,
                       simulator="system_apis.kantata.simulator:KantataSimulator", order=3)
"""The psa vendor kantata: found through the `psconnect.vendors` entry point (pyproject.toml)."""
