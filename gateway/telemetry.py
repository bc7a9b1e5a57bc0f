"""The gateway's one telemetry hook: a request's metrics and its trace span, once its outcome is known.

`ObservedApp` calls `record_request` where it writes the access log, so the hot path gains
one call at its end and nothing before: the series come from what the access log already
knows (API, operation, consumer, status, latency) and from what the policy chain left on
the request (the refusal's problem, an idempotent replay). Ungoverned paths (docs, portal,
`/health`, unknown paths) count under api="-", operation="-" so a scan of unknown URLs
cannot mint new series.
"""

from __future__ import annotations

import time
from typing import Any

from foundation import metrics, tracing
from policies.idempotency_stores import StoredResponse

__all__ = ["record_request"]

_NONE = "-"


def record_request(scope: Any, ctx: Any, status: int, duration_ms: float, incoming: str | None, own: str) -> None:
    route = getattr(ctx, "route", None)
    principal = getattr(ctx, "principal", None)
    api = getattr(route, "api", None) or _NONE
    operation = getattr(route, "operation_id", None) or _NONE
    seconds = duration_ms / 1000
    metrics.observe_request(api, operation, getattr(principal, "client_id", None) or _NONE, status, seconds)
    if ctx is not None:
        state = ctx.state
        problem = state.get("problem")
        if problem is not None:
            reason = problem.problem.code or problem.problem.type.rsplit("/", 1)[-1]
            metrics.observe_policy_decision(api, status, reason)
        elif isinstance(state.get("idempotency"), StoredResponse):
            metrics.observe_policy_decision(api, status, None, replayed=True)
    if tracing.enabled():
        end = time.time_ns()
        name = f"{scope.get('method')} {operation if route is not None else scope['path']}"
        tracing.record_request_span(name, incoming, own, end - int(duration_ms * 1e6), end, status, {
            "http.request.method": scope.get("method"), "url.path": scope["path"], "psconnect.api": api,
            "psconnect.operation": operation, "psconnect.consumer": getattr(principal, "client_id", None)})
