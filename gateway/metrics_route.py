"""`GET /metrics`: the Prometheus text of every series (foundation/metrics.py), behind the gateway's own auth.

Protected by its own scope, `ops.metrics:read`, bound in the bindings file like any operation
(API `system.ops`): a Prometheus server scrapes with a client-credentials token
(`authorization: {credentials: ...}` in its scrape config) of a client an admin granted that
scope. No scope is self-service, so a portal developer cannot read another consumer's traffic.
One listener, one auth story, no second port to firewall; the series carry consumer ids,
which is why the endpoint is not left open.

The series span every legal entity (hours posted, vendor calls and runs carry an entity label),
so a client restricted to some entities is refused with the grant's 403 rather than shown the
others' figures; a scraper is an operator's client, granted no entity restriction.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, get

from contracts.problems import ProblemError
from foundation.grants import entity_grant
from foundation.metrics import CONTENT_TYPE, exposition

__all__ = ["METRICS_API", "METRICS_SCOPE", "metrics_router"]

METRICS_API = "system.ops"
METRICS_SCOPE = "ops.metrics:read"


@get("/metrics", operation_id="ops.getMetrics", sync_to_thread=False, summary="Prometheus metrics",
     media_type=CONTENT_TYPE, description="Every series in the Prometheus text exposition format (version 0.0.4).")
def get_metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    if entity_grant(request, outside_gateway=None) is not None:
        raise ProblemError(403, "forbidden", "Legal entity not granted",
                           "The metrics cover every legal entity; a client restricted to some entities may not "
                           "read them.", code="legal_entity_forbidden")
    return Response(exposition(), media_type=CONTENT_TYPE)


def metrics_router() -> Router:
    return Router(path="/", opt={"api": METRICS_API}, route_handlers=[get_metrics])
