"""Outermost ASGI wrapper: correlation, trace context and the JSON access log.

It wraps the whole app (not one route), so every response — 404s for unknown paths,
the token endpoint, docs — carries `X-Correlation-ID` and `traceparent` and gets one
structured access-log line. A valid incoming id is kept; anything else is replaced,
so a caller cannot inject log lines or oversized headers.

Per request this is on the hot path of every call (issue 15's profile: ids, this
wrapper and usage ~11%): new ids come from the `random` module (reseeded after fork;
ids need uniqueness, not secrecy — `uuid4()` and `secrets` cost a system call each),
and when the access line would only reach our own writer thread it is encoded here
and handed over once per event-loop turn with the other lines of that turn, instead
of a `LogRecord` and the logging machinery per request. Anything else listening on
the logger (a test's capture, a handler added by an operator) gets records as before.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import queue
import random
import re
import time
from logging.handlers import QueueHandler, QueueListener
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from contracts.correlation import correlation_id, traceparent
from gateway.telemetry import record_request
from gateway.usage import UsageRecorder

__all__ = ["ObservedApp", "access_line", "configure_logging"]

access_log = logging.getLogger("psconnect.access")
_encode = msgspec.json.Encoder().encode
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")
_TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record, _Lines):
            return record.msg  # access lines of one loop turn, already JSON
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


class _Lines(logging.LogRecord):
    """Access-log lines already encoded, several per record: one record per event-loop turn."""

    def __init__(self, text: str) -> None:
        super().__init__("psconnect.access", logging.INFO, "", 0, text, None, None)


_handler: _DeferredQueueHandler | None = None
_records: queue.SimpleQueue[logging.LogRecord] | None = None


class _AccessLines:
    """This turn's access lines: encoded on the request path, queued to the writer thread once per turn."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self._ts_second = -1
        self._ts = b""

    def stamp(self, now: float) -> bytes:
        """The formatted `ts` (local time, as the formatter writes it), computed once per second."""
        second = int(now)
        if second != self._ts_second:
            self._ts_second, self._ts = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second)).encode()
        return self._ts

    def add(self, line: bytes) -> None:
        if not self.lines:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (never on the request path): write it now
                self.lines.append(line)
                self.flush()
                return
        self.lines.append(line)

    def flush(self) -> None:
        lines, self.lines = self.lines, []
        if lines and _records is not None:
            _records.put(_Lines(b"\n".join(lines).decode()))


_access_lines = _AccessLines()


def access_line(fields: dict[str, Any], ts: bytes) -> bytes:
    """The line `_JsonFormatter` writes for an access record carrying `fields` (its correlation id among them)."""
    return b'{"ts":"' + ts + b'","level":"info","logger":"psconnect.access",' + _encode(fields)[1:]


def _only_our_writer() -> bool:
    """True when an access record would reach nothing but our writer thread (no capture, no extra handler)."""
    logger: logging.Logger | None = access_log
    ours = False
    while logger is not None:
        for handler in logger.handlers:
            if handler is not _handler:
                return False
            ours = True
        if not logger.propagate:
            break
        logger = logger.parent
    return ours


def _new_correlation_id() -> str:
    """A random (version 4 shaped) UUID in its 36-character text form."""
    h = f"{random.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def _new_traceparent(parent: str) -> str:
    """contracts.correlation.new_traceparent's W3C traceparent, with ids from `random` (see the module doc)."""
    span = f"{random.getrandbits(64):016x}"
    if parent and _TRACEPARENT.match(parent):
        parts = parent.split("-")
        if parts[1] != "0" * 32:
            return f"00-{parts[1]}-{span}-{parts[3]}"
    return f"00-{random.getrandbits(128):032x}-{span}-01"


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for psconnect's loggers, written by one background thread per process."""
    global _handler, _records
    if _handler is None:
        writer = logging.StreamHandler()
        writer.setFormatter(_JsonFormatter())
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        _records = records
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
            cid = _new_correlation_id()
        parent = headers.get(b"traceparent", b"").decode("latin-1")
        tp = _new_traceparent(parent)
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
            # Taken off the scope, not read: the context holds the request, which holds the scope, so leaving it
            # there made every governed request (and the body Litestar decoded into the scope's state) a cycle
            # only the cyclic collector could free (issue 15). Nothing reads it after this, the outermost layer.
            ctx = scope.get("state", {}).pop("policy_context", None)
            principal = getattr(ctx, "principal", None)
            duration_ms = (time.perf_counter() - started) * 1000
            if self.usage is not None and principal is not None:
                self.usage.record(principal.client_id, status, duration_ms)
            # metrics + trace span
            record_request(scope, ctx, status, duration_ms, parent if _TRACEPARENT.match(parent) else None, tp)
            if access_log.isEnabledFor(logging.INFO):
                route = getattr(ctx, "route", None)
                fields = {
                    "event": "access", "method": scope.get("method"), "path": scope["path"], "status": status,
                    "duration_ms": round(duration_ms, 3),
                    "operation": getattr(route, "operation_id", None),
                    "client_id": getattr(principal, "client_id", None),
                    "correlation_id": cid, "traceparent": tp,
                }
                if _only_our_writer():
                    _access_lines.add(access_line(fields, _access_lines.stamp(time.time())))
                else:
                    access_log.info("access", extra={"fields": fields})
            correlation_id.reset(cid_token)
            traceparent.reset(tp_token)
