"""Outermost ASGI wrapper: correlation, trace context and the JSON access log.

It wraps the whole app (not one route), so every response — 404s for unknown paths,
the token endpoint, docs — carries `X-Correlation-ID` and `traceparent` and gets one
structured access-log line. A valid incoming id is kept; anything else is replaced,
so a caller cannot inject log lines or oversized headers.
"""

from __future__ import annotations

import atexit
import logging
import queue
import re
import time
import uuid
from logging.handlers import QueueHandler, QueueListener
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from contracts.correlation import correlation_id, new_traceparent, traceparent
from gateway.telemetry import record_request
from gateway.usage import UsageRecorder

__all__ = ["ObservedApp", "configure_logging"]

access_log = logging.getLogger("psconnect.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")
_TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = getattr(record, "fields", None) or {"message": record.getMessage()}
        payload = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname.lower(),
                   "logger": record.name, **payload}
        cid = getattr(record, "correlation_id", None) or correlation_id.get()
        if "correlation_id" not in payload and cid:
            payload["correlation_id"] = cid
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return msgspec.json.encode(payload).decode()


class _DeferredQueueHandler(QueueHandler):
    """Hands the record to the writer thread as it is: formatting and the write to stderr happen there, so a
    slow log reader never stalls the event loop, and the request pays only for creating the record."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if not hasattr(record, "correlation_id"):
            record.correlation_id = correlation_id.get()  # the writer thread does not see this request's context
        return record


_handler: _DeferredQueueHandler | None = None


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for psconnect's loggers, written by one background thread per process."""
    global _handler
    if _handler is None:
        writer = logging.StreamHandler()
        writer.setFormatter(_JsonFormatter())
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        listener = QueueListener(records, writer)
        listener.start()
        atexit.register(listener.stop)  # drains what is queued before the process ends
        _handler = _DeferredQueueHandler(records)
    root = logging.getLogger("psconnect")
    root.handlers[:] = [_handler]
    root.setLevel(level)
    root.propagate = False


class ObservedApp:
    def __init__(self, app: ASGIApp, usage: UsageRecorder | None = None) -> None:
        self.app = app
        self.usage = usage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        cid = headers.get(b"x-correlation-id", b"").decode("latin-1")
        if not _SAFE_ID.match(cid):
            cid = str(uuid.uuid4())
        parent = headers.get(b"traceparent", b"").decode("latin-1")
        tp = new_traceparent(parent if _TRACEPARENT.match(parent) else None)
        cid_token, tp_token = correlation_id.set(cid), traceparent.set(tp)
        started = time.perf_counter()
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-correlation-id", cid.encode()),
                                      (b"traceparent", tp.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            state = scope.get("state", {})
            ctx = state.get("policy_context")
            principal = getattr(ctx, "principal", None)
            duration_ms = (time.perf_counter() - started) * 1000
            if self.usage is not None and principal is not None:
                self.usage.record(principal.client_id, status, duration_ms)
            record_request(scope, ctx, status, duration_ms, parent or None, tp)  # metrics + trace span
            if access_log.isEnabledFor(logging.INFO):
                route = getattr(ctx, "route", None)
                access_log.info("access", extra={"fields": {
                    "event": "access", "method": scope.get("method"), "path": scope["path"], "status": status,
                    "duration_ms": round(duration_ms, 3),
                    "operation": getattr(route, "operation_id", None),
                    "client_id": getattr(principal, "client_id", None),
                    "correlation_id": cid, "traceparent": tp,
                }})
            correlation_id.reset(cid_token)
            traceparent.reset(tp_token)
