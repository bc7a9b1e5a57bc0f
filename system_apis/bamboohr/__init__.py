"""BambooHR (HR) system API: v1 client, mapping and HR routes; its account simulator is in `simulator/`."""

from system_apis.bamboohr.api import BambooHRHr, create_router, create_systems
from system_apis.bamboohr.client import BASE_URL, BambooHRClient
from system_apis.registry import Connection, VendorPackage


def simulated_connection(connection: Connection, legal_entities: tuple[str, ...]) -> Connection:
    """The API key the simulator accepts, and the entity its records belong to, where the file names none."""
    entity = {"default_entity": legal_entities[0]} if legal_entities else {}
    return connection.filled({"api_key": "sim-key", **entity})


__all__ = ["BASE_URL", "VENDOR", "BambooHRClient", "BambooHRHr", "create_router", "create_systems"]

VENDOR = VendorPackage(name="bamboohr", domains=("hr",), base_url=BASE_URL, create_router=create_router,
                       simulator="system_apis.bamboohr.simulator:BambooHRSimulator", order=12,
                       create_systems=create_systems, simulated_connection=simulated_connection)
"""The hr vendor bamboohr, found through the `psconnect.vendors` entry point (pyproject.toml)."""
