"""Serve the vendor simulators as their own HTTP servers, one port each.

Used when the gateway must talk to vendors over the network — the crash-recovery
tests kill the gateway while the vendors (and their state) live on — and to point
a distributed deployment at stand-in vendors. One port per installed vendor, in the
vendors' declared order (base+1 Salesforce, base+2 NetSuite, base+3 Kantata, then Workday
and Harvest); the printed JSON is ready for PSCONNECT_VENDOR_URLS. With a connections file,
one port per account of the file instead, in its order, each seeded as embedded mode seeds
that account (the entities it serves, its `simulator:` options), keyed by connection name.
"""

from __future__ import annotations

import asyncio
import json

import uvicorn

from gateway.vendors import simulated_accounts
from system_apis.connections import Connections
from system_apis.registry import Simulator, installed, load_simulator

__all__ = ["serve_simulators", "simulator_urls"]


def simulator_urls(host: str, port_base: int, names: list[str] | None = None) -> dict[str, str]:
    """Where each simulator listens: installed vendors by name, or the connections named, in order."""
    names = names if names is not None else [spec.name for spec in installed()]
    return {name: f"http://{host}:{port_base + i + 1}" for i, name in enumerate(names)}


async def serve_simulators(host: str, port_base: int, connections: Connections | None = None) -> None:
    simulators: dict[str, Simulator] = simulated_accounts(connections) if connections is not None else {
        spec.name: load_simulator(spec) for spec in installed()}
    servers = []
    for i, simulator in enumerate(simulators.values()):
        config = uvicorn.Config(simulator.app, host=host, port=port_base + i + 1, log_level="warning",
                                lifespan="off", access_log=False, timeout_graceful_shutdown=2)
        servers.append(uvicorn.Server(config))
    print(json.dumps(simulator_urls(host, port_base, list(simulators))), flush=True)
    await asyncio.gather(*(server.serve() for server in servers))
