"""Harvest v2 (time capture) system API: time entries, projects, users, uninvoiced report."""

from system_apis.harvest.api import HarvestTime, create_router
from system_apis.harvest.client import BASE_URL, HarvestClient
from system_apis.harvest.simulator import HarvestSimulator

__all__ = ["BASE_URL", "HarvestClient", "HarvestSimulator", "HarvestTime", "create_router"]
