"""NetSuite (ERP) system API: SuiteTalk REST record client, mapping, routes and simulator."""

from system_apis.netsuite.api import NetSuiteErp, create_router
from system_apis.netsuite.client import BASE_URL, NetSuiteClient
from system_apis.netsuite.simulator import NetSuiteSimulator

__all__ = ["BASE_URL", "NetSuiteClient", "NetSuiteErp", "NetSuiteSimulator", "create_router"]
