"""OpenTelemetry traces that agree with the gateway's own W3C `traceparent` handling.

The gateway already gives every request a span id (`contracts.correlation.traceparent`,
returned to the caller and written to the access log). Rather than a second, competing id,
the request's span *is* that one: `record_request_span` emits it, when the outcome is
known, with exactly that trace and span id (a forced id through `_GatewayIds`), and every
span opened during the request (`span`) takes it as parent when no other span is current.
So the caller's `traceparent`, the access log and the exported trace name the same span,
and the gateway's hot path pays nothing for tracing until the one hook at its end.

Nothing is exported unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set (OTLP over HTTP), or a
test installs its own exporter (`configure`). Unconfigured, `span` is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpx
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from contracts.correlation import traceparent

__all__ = ["SpanKind", "configure", "enabled", "instrument_client", "record_request_span", "span", "tracer"]

_forced: ContextVar[tuple[int, int] | None] = ContextVar("otel_forced_ids", default=None)
_owner: ContextVar[str | None] = ContextVar("otel_span_request", default=None)
"""The gateway request (its traceparent) the current `span` was opened in: an in-process hop (httpx over
ASGI) carries the caller's context vars into the next request, whose spans must hang off that request."""
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None


class _GatewayIds(IdGenerator):
    """Random ids, except for the request span, whose ids the gateway chose already."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        forced = _forced.get()
        return forced[1] if forced is not None else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        forced = _forced.get()
        return forced[0] if forced is not None else self._random.generate_trace_id()


def configure(exporter: SpanExporter | None = None, *, simple: bool = False) -> bool:
    """Install the tracer provider once: with `exporter`, else OTLP when the endpoint is set, else nothing."""
    global _provider, _tracer
    if _provider is not None:
        if exporter is not None:
            _provider.add_span_processor(SimpleSpanProcessor(exporter))
        return True
    if exporter is None and not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    service = os.environ.get("OTEL_SERVICE_NAME", "psconnect")
    _provider = TracerProvider(resource=Resource.create({"service.name": service}), id_generator=_GatewayIds())
    _provider.add_span_processor(SimpleSpanProcessor(exporter) if simple else BatchSpanProcessor(exporter))
    trace.set_tracer_provider(_provider)
    _tracer = _provider.get_tracer("psconnect")  # once: looking it up per span cost a third of the span
    return True


def enabled() -> bool:
    return _provider is not None


def tracer() -> trace.Tracer:
    return _tracer or trace.get_tracer("psconnect")


def _parse(header: str | None) -> SpanContext | None:
    if not header:
        return None
    parts = header.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        ctx = SpanContext(int(parts[1], 16), int(parts[2], 16), is_remote=True,
                          trace_flags=TraceFlags(int(parts[3], 16) & 1))
    except ValueError:
        return None
    return ctx if ctx.is_valid else None


def _parent() -> otel_context.Context | None:
    """The current span if opened in this request, else the gateway request's span (its traceparent)."""
    own = traceparent.get()
    if trace.get_current_span().get_span_context().is_valid and (own is None or _owner.get() == own):
        return None
    ctx = _parse(own)
    return trace.set_span_in_context(NonRecordingSpan(ctx)) if ctx is not None else None


@contextmanager
def span(name: str, attributes: Mapping[str, str | int] | None = None, *,
         kind: SpanKind = SpanKind.INTERNAL) -> Iterator[None]:
    """A span around a block (process run, step, system API call, vendor call); a no-op when tracing is off."""
    if _provider is None:
        yield
        return
    parent = _parent()
    token = _owner.set(traceparent.get())
    try:
        with tracer().start_as_current_span(name, context=parent, kind=kind, attributes=attributes):
            yield
    finally:
        _owner.reset(token)


def record_request_span(name: str, incoming: str | None, own: str, start_ns: int, end_ns: int, status: int,
                        attributes: dict[str, Any]) -> None:
    """Emit the gateway request's span with the ids of its `traceparent` (`own`), child of the caller's."""
    if _provider is None:
        return
    ids = _parse(own)
    if ids is None:
        return
    parent = _parse(incoming)
    parent_ctx = trace.set_span_in_context(NonRecordingSpan(parent)) if parent is not None else otel_context.Context()
    token = _forced.set((ids.trace_id, ids.span_id))
    try:
        request_span = tracer().start_span(name, context=parent_ctx, kind=SpanKind.SERVER, start_time=start_ns,
                                           attributes={k: v for k, v in attributes.items() if v is not None})
    finally:
        _forced.reset(token)
    request_span.set_attribute("http.response.status_code", status)
    if status >= 500:
        request_span.set_status(trace.StatusCode.ERROR)
    request_span.end(end_time=end_ns)


def instrument_client(client: httpx.AsyncClient) -> None:
    """httpx spans (and their `traceparent`) on one client — the internal hops and each vendor's."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client)
    transport = client._transport
    instrumented = transport.handle_async_request

    async def handle_async_request(request: httpx.Request) -> httpx.Response:
        # A call made straight from a handler (no span of ours current) hangs off the gateway request's span.
        parent = _parent()
        if parent is None:
            return await instrumented(request)
        token = otel_context.attach(parent)
        try:
            return await instrumented(request)
        finally:
            otel_context.detach(token)

    setattr(transport, "handle_async_request", handle_async_request)  # noqa: B010 - instance override
