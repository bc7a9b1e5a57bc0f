"""One trace for a provisioning run: request → process → step → system API → vendor call, with the SDK's own
in-memory exporter (a reader nobody here wrote), and the caller's `traceparent` naming the request's span."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from foundation import tracing
from tests.stack import Stack, running_stack

EXPORTER = InMemorySpanExporter()
CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    tracing.configure(EXPORTER, simple=True)  # before the gateway builds its clients, so httpx is instrumented
    async with running_stack(tmp_path) as s:
        yield s


def parent_of(span: ReadableSpan, spans: dict[int, ReadableSpan]) -> ReadableSpan:
    assert span.parent is not None, f"{span.name} has no parent"
    found = spans.get(span.parent.span_id)
    assert found is not None, f"parent of {span.name} was not exported"
    return found


async def test_provisioning_run_is_one_trace_from_request_to_vendor_call(stack: Stack) -> None:
    EXPORTER.clear()
    response = await stack.http.post("/process/provisioning/v1/runs", json={"opportunity_id": "OPP-0001"},
                                     headers={"Idempotency-Key": "trace-run-0001", "traceparent": CALLER})
    assert response.status_code == 202, response.text
    run = await stack.wait(response.json()["id"])
    assert run["status"] == "succeeded", run
    ours = response.headers["traceparent"].split("-")
    assert ours[1] == CALLER.split("-")[1]  # the caller's trace continues

    trace_id = int(ours[1], 16)
    for _ in range(100):  # the workflow's span ends just after the run's status is written
        spans = {s.context.span_id: s for s in EXPORTER.get_finished_spans() if s.context.trace_id == trace_id}
        if any(s.name == "process provisioning" for s in spans.values()):
            break
        await asyncio.sleep(0.05)
    request = spans[int(ours[2], 16)]  # the span the caller was told about is the exported request span
    assert request.parent is not None and request.parent.span_id == int(CALLER.split("-")[2], 16)
    assert request.attributes is not None and request.attributes["psconnect.operation"] == "provisioning.startRun"

    process = next(s for s in spans.values() if s.name == "process provisioning")
    assert parent_of(process, spans) is request
    vendor_calls = [s for s in spans.values() if s.attributes and s.attributes.get("psconnect.vendor")]
    assert vendor_calls, [s.name for s in spans.values()]
    for vendor_call in vendor_calls:
        system_api = parent_of(vendor_call, spans)  # the gateway's span of the internal system API request
        assert system_api.attributes is not None and str(system_api.attributes["psconnect.api"]).startswith("system.")
        hop = parent_of(system_api, spans)  # the process step's httpx call that carried traceparent in-process
        step = parent_of(hop, spans)
        if step is request:  # the start handler's own look at the opportunity, before the workflow starts
            assert system_api.attributes["psconnect.operation"] == "crm.getOpportunity"
            continue
        assert step.name.startswith("step "), step.name
        assert parent_of(step, spans) is process
        wire = [s for s in spans.values() if s.parent is not None and s.parent.span_id == vendor_call.context.span_id]
        assert wire, f"no httpx span under {vendor_call.name}"  # the vendor HTTP call itself
    steps = {s.name for s in spans.values() if s.name.startswith("step ")}
    assert len(steps) >= 5
    # The start handler's own check of the opportunity (a system API call before any step) is in the trace too.
    direct = [s for s in spans.values() if s.attributes and s.attributes.get("psconnect.operation") ==
              "crm.getOpportunity" and parent_of(parent_of(s, spans), spans) is request]
    assert direct
    assert all(s.context.trace_id == trace_id for s in EXPORTER.get_finished_spans()
               if s.attributes and s.attributes.get("psconnect.operation") == "crm.getOpportunity")
