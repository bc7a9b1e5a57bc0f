"""Certinia PSA (psa and time) system API on the Salesforce platform; its org simulator is in `simulator/`."""

from system_apis.certinia.api import CertiniaPsa, CertiniaTime, create_router, create_systems
from system_apis.certinia.client import BASE_URL, CertiniaClient
from system_apis.registry import VendorPackage

__all__ = ["BASE_URL", "VENDOR", "CertiniaClient", "CertiniaPsa", "CertiniaTime", "create_router", "create_systems"]

VENDOR = VendorPackage(name="certinia", domains=("psa", "time"), base_url=BASE_URL, create_router=create_router,
                       simulator="system_apis.certinia.simulator:CertiniaSimulator", order=6,
                       create_systems=create_systems)
"""The psa and time vendor certinia, found through the `psconnect.vendors` entry point (pyproject.toml)."""
