"""Workday (HR) system API: workers and cost centers from the staffing REST API (v6)."""

from system_apis.workday.api import WorkdayHr, create_router
from system_apis.workday.client import BASE_URL, WorkdayClient
from system_apis.workday.simulator import WorkdaySimulator

__all__ = ["BASE_URL", "WorkdayClient", "WorkdayHr", "WorkdaySimulator", "create_router"]
