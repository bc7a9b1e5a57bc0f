"""Kantata OX (PSA) system API: workspaces as delivery projects, milestone stories, external references."""

from system_apis.kantata.api import KantataPsa, create_router
from system_apis.kantata.client import BASE_URL, KantataClient
from system_apis.kantata.simulator import KantataSimulator

__all__ = ["BASE_URL", "KantataClient", "KantataPsa", "KantataSimulator", "create_router"]
