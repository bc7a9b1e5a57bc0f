"""Serve the vendor simulators as their own HTTP servers, one port each.

Used when the gateway must talk to vendors over the network — the crash-recovery
tests kill the gateway while the vendors (and their state) live on — and to point
a distributed deployment at stand-in vendors. One port per installed vendor, in the
vendors' declared order (base+1 Salesforce, base+2 NetSuite, base+3 Kantata, then Workday
and Harvest); the printed JSON is ready for PSCONNECT_VENDOR_URLS.
"""

from __future__ import annotations

import asyncio
import json

import uvicorn

from system_apis.registry import installed, load_simulator

__all__ = ["serve_simulators", "simulator_urls"]


def simulator_urls(host: str, port_base: int) -> dict[str, str]:
    return {spec.name: f"http://{host}:{port_base + i + 1}" for i, spec in enumerate(installed())}


async def serve_simulators(host: str, port_base: int) -> None:
    servers = []
    for i, spec in enumerate(installed()):
        config = uvicorn.Config(load_simulator(spec).app, host=host, port=port_base + i + 1, log_level="warning",
                                lifespan="off", access_log=False, timeout_graceful_shutdown=2)
        servers.append(uvicorn.Server(config))
    print(json.dumps(simulator_urls(host, port_base)), flush=True)
    await asyncio.gather(*(server.serve() for server in servers))
