"""Every error leaves the gateway as RFC 9457 problem+json with the correlation id.

Registered once on the app: policy problems, validation errors (field by field),
vendor failures, Litestar's HTTP exceptions, and anything unexpected (a 500 whose
detail hides internals; the traceback goes to the log with the correlation id).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from contracts.correlation import correlation_id
from contracts.problems import MEDIA_TYPE, FieldError, Problem, ProblemError, problem_type, upstream_unavailable
from process_apis.failures import TransientFailure
from system_apis.problems import VendorError, vendor_problem

__all__ = ["EXCEPTION_HANDLERS", "problem_response"]

log = logging.getLogger("psconnect.errors")

_SLUGS = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
          406: "not-acceptable", 409: "conflict", 413: "payload-too-large", 415: "unsupported-media-type",
          422: "validation-error", 429: "rate-limited", 500: "internal-error", 503: "unavailable"}
_TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
           406: "Not acceptable", 409: "Conflict", 413: "Payload too large", 415: "Unsupported media type",
           422: "Validation failed", 429: "Too many requests", 500: "Internal server error", 503: "Unavailable"}


def problem_response(problem: Problem, request: Request[Any, Any, Any] | None = None,
                     headers: dict[str, str] | None = None) -> Response[bytes]:
    problem.correlation_id = problem.correlation_id or correlation_id.get()
    if request is not None and problem.instance is None:
        problem.instance = request.url.path
    return Response(msgspec.json.encode(problem), status_code=problem.status, media_type=MEDIA_TYPE,
                    headers=headers)


def _problem_error(request: Request[Any, Any, Any], exc: ProblemError) -> Response[bytes]:
    return problem_response(exc.problem, request, exc.headers)


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    errors: list[FieldError] = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if isinstance(item, dict):
            errors.append(_field_error(item))
    # Litestar reports every validation failure as 400; a well-formed request whose
    # values break the contract is 422, a body that is not JSON at all stays 400.
    # The detail of a parameter failure quotes the request's URL ("Validation failed for GET /…?q=decode"), which a
    # caller controls: only Litestar's own wording and the errors' messages say whether the body was unreadable.
    detail = "" if (exc.detail or "").startswith("Validation failed for ") else (exc.detail or "")
    said = " ".join([detail, *(str(item.get("message", "")) for item in extra if isinstance(item, dict))]).lower()
    malformed = "decode" in said or "malformed" in said
    status = 400 if malformed else 422
    problem = Problem(type=problem_type(_SLUGS[status]), title=_TITLES[status], status=status,
                      detail=exc.detail or "The request does not match the contract.", errors=errors or None,
                      code="malformed_body" if malformed else "validation_failed")
    return problem_response(problem, request)


_FIELD_IN_MESSAGE = re.compile(r"^Object (?:contains unknown|missing required) field `([^`]+)`")


def _field_error(item: dict[str, Any]) -> FieldError:
    """A body error as a JSON pointer to the field (RFC 6901), naming unknown or missing fields themselves.

    Litestar reports `key` as the top-level field (`billing_address.city`, `tasks[0].name`) or `data` for
    the body as a whole; msgspec's message names an unknown or missing field. Parameters keep their name.
    """
    key, message = str(item.get("key") or ""), str(item.get("message", "invalid"))
    if item.get("source") not in (None, "body"):
        return FieldError(pointer=key or str(item.get("source")), detail=message)
    path = [] if key in ("", "data") else re.split(r"\.|\[(\d+)\]", key)
    named = _FIELD_IN_MESSAGE.match(message)
    parts = [p for p in path if p] + ([named.group(1)] if named else [])
    pointer = "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)
    return FieldError(pointer=pointer, detail=message)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    problem = Problem(type=problem_type(_SLUGS.get(status, "error")), title=_TITLES.get(status, "Error"),
                      status=status, detail=exc.detail if status < 500 else None)
    headers = {k: str(v) for k, v in (exc.headers or {}).items()}
    return problem_response(problem, request, headers)


def _vendor(request: Request[Any, Any, Any], exc: VendorError) -> Response[bytes]:
    log.warning("vendor error on %s: %s", request.url.path, exc)
    return _problem_error(request, vendor_problem(exc))


def _upstream_transient(request: Request[Any, Any, Any], exc: TransientFailure) -> Response[bytes]:
    """A process read a system API that is down or throttling: the caller retries, as the process would."""
    log.warning("upstream unavailable on %s: %s", request.url.path, exc)
    return _problem_error(request, upstream_unavailable("Upstream system unavailable", str(exc), exc.retry_after))


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    problem = Problem(type=problem_type("internal-error"), title="Internal server error", status=500,
                      detail="An unexpected error occurred; quote the correlation id when reporting it.")
    return problem_response(problem, request)


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    ProblemError: _problem_error,
    ValidationException: _validation,
    VendorError: _vendor,
    TransientFailure: _upstream_transient,
    HTTPException: _http,
    Exception: _unexpected,
}

