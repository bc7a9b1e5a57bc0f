"""Salesforce (CRM) system API: REST v60.0 client, mapping, CRM routes and an in-memory org simulator."""

from system_apis.salesforce.api import SalesforceCrm, create_router
from system_apis.salesforce.client import BASE_URL, SalesforceClient
from system_apis.salesforce.simulator import SalesforceSimulator

__all__ = ["BASE_URL", "SalesforceClient", "SalesforceCrm", "SalesforceSimulator", "create_router"]
