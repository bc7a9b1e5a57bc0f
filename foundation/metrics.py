"""The Prometheus series every layer records, in one neutral module every layer may import.

Why one module: a series is declared once (name, labels, buckets) and the gateway, the
system APIs and the process APIs only call the small helpers below, so no layer needs
to know another's internals to be measured. `prometheus-client` keeps each value in
this process; with `PROMETHEUS_MULTIPROC_DIR` set (``psconnect serve --workers N`` sets
and empties it before the workers start) every worker writes its values to files there
and `exposition()` merges them, so a scrape of any worker reports one set.
Label values are bounded on purpose: API ids, operation ids, client ids, vendors,
legal entities, process and step names, problem types — never paths or free text.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from contextvars import ContextVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.registry import REGISTRY

__all__ = [
    "CONTENT_TYPE",
    "exposition",
    "legal_entity",
    "observe_circuit",
    "observe_exception_opened",
    "observe_exception_resolved",
    "observe_hours_posted",
    "observe_policy_decision",
    "observe_request",
    "observe_run_finished",
    "observe_run_started",
    "observe_step",
    "observe_vendor_budget",
    "observe_vendor_call",
    "observe_vendor_retry",
    "operation_label",
    "remaining_budget",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STEP = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0)

REQUESTS = Counter("psconnect_gateway_requests", "Gateway requests by API, operation, consumer and status.",
                   ["api", "operation", "consumer", "status"])
REQUEST_LATENCY = Histogram("psconnect_gateway_request_duration_seconds",
                            "Gateway request latency, policy chain included.", ["api", "operation"], buckets=_LATENCY)
POLICY_DECISIONS = Counter("psconnect_policy_decisions",
                           "Refusals and replays by the policy chain: decision (unauthorized, forbidden, "
                           "rate_limited, invalid, replayed) and the problem type that says why.",
                           ["api", "decision", "reason"])
VENDOR_CALLS = Counter("psconnect_vendor_calls", "Vendor HTTP calls by vendor, operation, legal entity and outcome "
                       "(ok, or the error class).", ["vendor", "operation", "legal_entity", "outcome"])
VENDOR_LATENCY = Histogram("psconnect_vendor_call_duration_seconds", "Vendor HTTP call latency, retries included.",
                           ["vendor", "operation"], buckets=_LATENCY)
VENDOR_RETRIES = Counter("psconnect_vendor_retries", "Retried vendor calls by vendor and error class.",
                         ["vendor", "error"])
CIRCUIT = Gauge("psconnect_vendor_circuit_state", "Circuit breaker per vendor: 0 closed, 1 half-open, 2 open.",
                ["vendor"], multiprocess_mode="max")
VENDOR_BUDGET = Gauge("psconnect_vendor_ratelimit_remaining",
                      "Requests the vendor says remain in its rate-limit window (where it tells).",
                      ["vendor"], multiprocess_mode="min")
RUNS = Counter("psconnect_process_runs", "Process runs by process and event (started, succeeded, failed, "
               "needs_attention).", ["process", "event"])
STEP_DURATION = Histogram("psconnect_process_step_duration_seconds", "Durable step duration by process step "
                          "and outcome, retries included.", ["step", "outcome"], buckets=_STEP)
EXCEPTIONS = Counter("psconnect_process_exceptions", "Exceptions opened and resolved by process, reason and owner.",
                     ["process", "event", "reason", "owner"])
EXCEPTION_AGE = Histogram("psconnect_process_exception_age_seconds", "Age of an exception when it is resolved.",
                          ["process", "reason"], buckets=(60, 600, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400))
HOURS_POSTED = Counter("psconnect_time_posted_hours", "Hours posted to the ERP per legal entity: `posted` approved "
                       "time, `reversed` the postings taken back when approved time changed (net = posted − "
                       "reversed).", ["legal_entity", "direction"])
LAST_SUCCESS = Gauge("psconnect_process_last_success_timestamp_seconds", "Last successful run per flow (unix time).",
                     ["process"], multiprocess_mode="max")

legal_entity: ContextVar[str] = ContextVar("psconnect_metrics_legal_entity", default="-")
"""The legal entity a vendor call serves, where the system API knows it (label of the vendor-call series)."""

_ID_SEGMENT = re.compile(r"^(?!v\d+(\.\d+)?$)(?=.*\d)[^/]+$|^[0-9a-fA-F-]{16,}$")
_BUDGET_HEADERS = ("x-ratelimit-remaining", "ratelimit-remaining", "x-rate-limit-remaining")
_CIRCUIT_VALUE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
_DECISIONS = {401: "unauthorized", 403: "forbidden", 429: "rate_limited", 400: "invalid", 413: "invalid",
              415: "invalid", 422: "invalid"}


def operation_label(method: str, url: str) -> str:
    """`GET /record/v1/customer/{id}`: the vendor URL's path with record ids folded, so the label stays bounded."""
    path = url.split("?", 1)[0]
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    segments = ["{id}" if _ID_SEGMENT.match(seg) else seg for seg in path.split("/")]
    return f"{method.upper()} {'/'.join(segments)}"


def remaining_budget(headers: Mapping[str, str]) -> float | None:
    """The vendor's remaining rate-limit budget from the common headers, when it sends one."""
    for name in _BUDGET_HEADERS:
        value = headers.get(name)
        if value is not None:
            try:
                return float(value.split(",")[0].split(";")[0])
            except ValueError:
                return None
    return None


def observe_request(api: str, operation: str, consumer: str, status: int, seconds: float) -> None:
    REQUESTS.labels(api, operation, consumer, str(status)).inc()
    REQUEST_LATENCY.labels(api, operation).observe(seconds)


def observe_policy_decision(api: str, status: int, reason: str | None, *, replayed: bool = False) -> None:
    """Count a refusal the chain answered (by its problem type) or an idempotent replay."""
    if replayed:
        POLICY_DECISIONS.labels(api, "replayed", "idempotency").inc()
        return
    decision = _DECISIONS.get(status)
    if decision is not None and reason is not None:
        POLICY_DECISIONS.labels(api, decision, reason).inc()


def observe_vendor_call(vendor: str, operation: str, legal_entity: str, outcome: str, seconds: float) -> None:
    VENDOR_CALLS.labels(vendor, operation, legal_entity, outcome).inc()
    VENDOR_LATENCY.labels(vendor, operation).observe(seconds)


def observe_vendor_retry(vendor: str, error: str) -> None:
    VENDOR_RETRIES.labels(vendor, error).inc()


def observe_circuit(vendor: str, state: str) -> None:
    CIRCUIT.labels(vendor).set(_CIRCUIT_VALUE.get(state, 0.0))


def observe_vendor_budget(vendor: str, remaining: float) -> None:
    VENDOR_BUDGET.labels(vendor).set(remaining)


def observe_run_started(process: str) -> None:
    RUNS.labels(process, "started").inc()


def observe_run_finished(process: str, status: str) -> None:
    RUNS.labels(process, status).inc()
    if status == "succeeded":
        LAST_SUCCESS.labels(process).set(time.time())


def observe_hours_posted(legal_entity: str, hours: Iterable[float]) -> None:
    """A counter only grows: a reversal (negative hours) counts under `reversed`, never as a decrement."""
    posted = reversed_ = 0.0
    for h in hours:
        if h >= 0:
            posted += h
        else:
            reversed_ -= h
    HOURS_POSTED.labels(legal_entity, "posted").inc(posted)
    HOURS_POSTED.labels(legal_entity, "reversed").inc(reversed_)


def observe_step(step: str, outcome: str, seconds: float) -> None:
    STEP_DURATION.labels(step, outcome).observe(seconds)


def observe_exception_opened(process: str, reason: str, owner: str) -> None:
    EXCEPTIONS.labels(process, "opened", reason, owner).inc()


def observe_exception_resolved(process: str, reason: str, owner: str, age_seconds: float) -> None:
    EXCEPTIONS.labels(process, "resolved", reason, owner).inc()
    EXCEPTION_AGE.labels(process, reason).observe(age_seconds)


def exposition() -> bytes:
    """The Prometheus text of every series: merged across the workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
