"""Correlation context carried through every layer, vendor call, event and log line.

The gateway sets these per request; vendor clients and event publishers read them.
Context variables follow asyncio tasks, so concurrent requests never mix ids.
"""

from __future__ import annotations

import secrets
from contextvars import ContextVar

__all__ = ["correlation_id", "new_traceparent", "outgoing_headers", "traceparent"]

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
traceparent: ContextVar[str | None] = ContextVar("traceparent", default=None)


def new_traceparent(parent: str | None = None) -> str:
    """A W3C traceparent continuing `parent`'s trace with a new span id, or a new trace."""
    trace_id = secrets.token_hex(16)
    flags = "01"
    if parent:
        parts = parent.split("-")
        if len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
            trace_id, flags = parts[1], parts[3]
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


def outgoing_headers() -> dict[str, str]:
    """Headers that pass the current correlation on to a downstream call."""
    headers: dict[str, str] = {}
    cid = correlation_id.get()
    if cid:
        headers["X-Correlation-ID"] = cid
    headers["traceparent"] = new_traceparent(traceparent.get())
    return headers
