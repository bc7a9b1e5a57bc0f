"""The problem+json responses a published contract documents beside each operation's own.

Handlers only declare what they return on success; the errors come from places the
handler never sees — the policy chain (401, 403, 429), Litestar's validation (400,
422), the vendor layer (503) — so the contract adds them from rules kept here, one
rule per status, rather than asking every handler to repeat them. They are written
once per document under `components/responses` and referenced from operations.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from contracts.problems import MEDIA_TYPE, Problem

__all__ = [
    "PROBLEM_RESPONSES",
    "REF",
    "problem_components",
    "problem_content",
    "problem_statuses",
]

REF: Final = "#/components/schemas/{name}"

_RETRY_AFTER = {"description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 0}}
_RATELIMIT_POLICY = {"description": ("Limits of the caller's plan on this API (IETF httpapi RateLimit-Policy, "
                                     'structured-field list), e.g. `"minute";q=600;w=60, "day";q=50000;w=86400`.'),
                     "schema": {"type": "string"}}
_RATELIMIT = {"description": ('Remaining units and seconds to reset per limit (IETF httpapi RateLimit), e.g. '
                              '`"minute";r=0;t=12, "day";r=4870;t=40210`.'), "schema": {"type": "string"}}
_CHALLENGE = {"description": "RFC 6750 Bearer challenge (error and scope on 403).", "schema": {"type": "string"}}

# status -> (component name, description, headers)
PROBLEM_RESPONSES: Final[dict[int, tuple[str, str, dict[str, Any]]]] = {
    400: ("BadRequest", "The request is not well-formed: a body that is not JSON or not UTF-8 (code "
                        "`malformed_body`), a missing body (`body_missing`) or one nested too deeply "
                        "(`body_too_deep`).", {}),
    401: ("Unauthorized", "No bearer token, or the token is invalid, expired or revoked.",
          {"WWW-Authenticate": _CHALLENGE}),
    403: ("Forbidden", "The token lacks a scope the operation requires (code `insufficient_scope`).",
          {"WWW-Authenticate": _CHALLENGE}),
    404: ("NotFound", "No record with this id, or a record the request refers to does not exist.", {}),
    409: ("Conflict", "The request conflicts with the current state of the resource.", {}),
    422: ("ValidationFailed", "A parameter or body field breaks the contract; `errors[]` names each one. A cursor "
                              "that the same list did not issue is code `invalid_cursor`.", {}),
    429: ("TooManyRequests", "A rate limit (code `rate_limited`) or quota (code `quota_exceeded`) of the caller's "
                             "plan, or the API's spike arrest, is exhausted.",
          {"Retry-After": _RETRY_AFTER, "RateLimit-Policy": _RATELIMIT_POLICY, "RateLimit": _RATELIMIT}),
    503: ("Unavailable", "A system the operation depends on is unavailable or throttling us; retry later.",
          {"Retry-After": _RETRY_AFTER}),
}

# Operations whose service answers with more than the rules below derive from the route:
# starting a run looks the opportunity up in the CRM (404 unknown, 503 CRM down).
_OPERATION_STATUSES: Final[dict[str, frozenset[int]]] = {
    "provisioning.startRun": frozenset({404, 503}),
    "provisioning.receiveCrmEvent": frozenset({404, 503}),
    "provisioning.replayException": frozenset({409}),
    "worker_sync.replayException": frozenset({409}),
    "receivables.replayException": frozenset({409}),
    "dashboards.getReceivables": frozenset({503}),  # a group currency whose rate the entity's ERP cannot give now
    "dashboards.listMargin": frozenset({503}),
    "timeToBill.replayException": frozenset({409}),
    "timeToBill.listReconciliation": frozenset({404, 503}),  # 503: the time system or ERP is throttling us
    "workbench.resolveException": frozenset({409}),
    "workbench.replayException": frozenset({409}),
    "psa.upsertUser": frozenset({409}),  # another PSA user has the email (code `email_taken`)
    "psa.decideTimesheet": frozenset({409}),  # decided the other way already (code `already_decided`)
}


def problem_content() -> dict[str, Any]:
    return {MEDIA_TYPE: {"schema": {"$ref": REF.format(name="Problem")}}}


def problem_components() -> dict[str, Any]:
    """The `Problem` and `FieldError` schemas, from the Struct every layer raises."""
    _, components = msgspec.json.schema_components((Problem,), ref_template=REF)
    return components


def problem_statuses(*, governed: bool, layer: str, operation_id: str, has_input: bool, has_body: bool,
                     has_path_params: bool, has_cursor: bool) -> list[int]:
    """Which problem statuses one operation can answer with, by the rules of the gateway.

    Args:
        governed: the route runs the policy chain (authentication, rate limits).
        layer: `system`, `process`, `experience` or `gateway`.
        operation_id: the operation's id (a few process operations have their own conflicts).
        has_input: the operation takes parameters or a body.
        has_body: the operation takes a request body.
        has_path_params: the route has path parameters, so the record may not exist.
        has_cursor: the operation pages with a `cursor` (a malformed query string is a 400; a cursor the
            list did not issue is a 422).
    """
    statuses: set[int] = set()
    if governed:
        statuses |= {401, 403, 429}
    if has_input:
        statuses.add(422)
    if has_body or has_cursor:
        statuses.add(400)
    if has_path_params and governed:
        statuses.add(404)
    if governed and layer == "system":
        statuses.add(503)
    statuses |= _OPERATION_STATUSES.get(operation_id, frozenset())
    return sorted(statuses)
