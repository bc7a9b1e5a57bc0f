"""Dynamics 365 Business Central (ERP) system API: OData v4 client, mapping, routes; simulator in `simulator/`."""

from system_apis.businesscentral.api import BusinessCentralErp, create_router, create_systems
from system_apis.businesscentral.client import BASE_URL, BusinessCentralClient
from system_apis.registry import Connection, VendorPackage


def simulated_connection(connection: Connection, legal_entities: tuple[str, ...]) -> Connection:
    """The app registration the simulator accepts (any non-empty pair) where the file names none."""
    return connection.filled({"client_id": "sim-client", "client_secret": "sim-secret"})


__all__ = ["BASE_URL", "VENDOR", "BusinessCentralClient", "BusinessCentralErp", "create_router", "create_systems"]

VENDOR = VendorPackage(name="businesscentral", domains=("erp",), base_url=BASE_URL, create_router=create_router,
                       simulator="system_apis.businesscentral.simulator:BusinessCentralSimulator", order=6,
                       default_token="sim-client:sim-secret", create_systems=create_systems,
                       simulated_connection=simulated_connection)
"""The erp vendor businesscentral, found through the `psconnect.vendors` entry point (pyproject.toml)."""
