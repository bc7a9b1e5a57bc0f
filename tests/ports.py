"""Ports for servers the tests start in other processes.

Picked below Linux's ephemeral range (32768+): a port the kernel hands to client
sockets can be taken between our check and the server's bind, which made start-up
flaky when several servers start at once.
"""

from __future__ import annotations

import random
import socket

__all__ = ["free_port"]


def free_port(span: int = 1) -> int:
    """A port p with p..p+span-1 bindable now."""
    for _ in range(100):
        port = random.randrange(20000, 32000 - span)
        if all(_bindable(port + i) for i in range(span)):
            return port
    raise RuntimeError("no free port range")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
