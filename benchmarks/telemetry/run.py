"""CPU of the gateway's telemetry hook per request, metrics alone and with tracing on (not in `make test`).

    .venv/bin/python -m benchmarks.telemetry.run

Calls `gateway.telemetry.record_request` as `ObservedApp` does at the end of every request, with a
governed request's context (API, operation, consumer, status), and reports process CPU per call. Compare it
with the governed path's CPU per request from `make bench-gateway` (benchmarks/gateway/RESULTS.md): the
hook is the only thing telemetry adds to that path (the policy chain and handlers are untouched).
Tracing exports through the production BatchSpanProcessor to an exporter that drops the spans.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from contracts.correlation import new_traceparent
from foundation import tracing
from gateway.telemetry import record_request

CALLS = 50_000


@dataclass
class _Route:
    api: str = "system.erp"
    operation_id: str = "erp.getProject"


@dataclass
class _Principal:
    client_id: str = "app-bench"


@dataclass
class _Ctx:
    route: _Route = field(default_factory=_Route)
    principal: _Principal = field(default_factory=_Principal)
    state: dict[str, Any] = field(default_factory=dict)


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def per_call_us() -> float:
    scope = {"method": "GET", "path": "/system/erp/v1/projects/P-1"}
    ctx = _Ctx()
    incoming = new_traceparent()
    own = new_traceparent(incoming)
    for _ in range(2000):  # warm the label children
        record_request(scope, ctx, 200, 1.2, incoming, own)
    started = time.process_time()
    for _ in range(CALLS):
        record_request(scope, ctx, 200, 1.2, incoming, own)
    return (time.process_time() - started) / CALLS * 1e6


def main() -> None:
    metrics_only = per_call_us()
    tracing.configure(_Drop())
    traced = per_call_us()
    print(f"telemetry hook CPU per request: metrics {metrics_only:.1f} µs; metrics + tracing {traced:.1f} µs")


if __name__ == "__main__":
    main()
