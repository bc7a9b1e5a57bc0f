"""RFC 9457 problem details: one Struct, one exception, one stable type URI per error kind.

Every layer raises `ProblemError`; the gateway renders it as `application/problem+json`
with the correlation id, so no endpoint formats errors by hand.
"""

from __future__ import annotations

import math
from typing import Annotated, Final

import msgspec
from msgspec import Meta

__all__ = ["MEDIA_TYPE", "PROBLEM_BASE", "FieldError", "Problem", "ProblemError", "invalid_cursor", "problem_type"]

PROBLEM_BASE: Final = "https://psconnect.dev/problems/"
MEDIA_TYPE: Final = "application/problem+json"


def problem_type(slug: str) -> str:
    return PROBLEM_BASE + slug


class FieldError(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One field-level validation error."""

    pointer: Annotated[str, Meta(description="JSON pointer or parameter name of the offending field.")]
    detail: str


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem details object."""

    type: Annotated[str, Meta(description="Stable URI identifying the kind of problem.")]
    title: str
    status: Annotated[int, Meta(ge=400, le=599)]
    detail: str | None = None
    instance: str | None = None
    correlation_id: str | None = None
    errors: list[FieldError] | None = None
    code: Annotated[str | None, Meta(description="Machine-readable reason, e.g. insufficient_scope.")] = None


class ProblemError(Exception):
    """Raise anywhere to answer with a problem; headers are added to the response."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.problem = Problem(
            type=problem_type(slug), title=title, status=status, detail=detail, errors=errors, code=code
        )
        self.headers = headers or {}


def invalid_cursor(detail: str = "The cursor is not one this API issued.") -> ProblemError:
    """Every list answers a forged, stale or foreign cursor the same way: a 422 on `cursor`."""
    return ProblemError(422, "validation-error", "Validation failed", detail,
                        errors=[FieldError(pointer="cursor", detail="invalid cursor")], code="invalid_cursor")


def upstream_unavailable(title: str, detail: str, retry_after: float | None) -> ProblemError:
    """A system the call needs is down or throttling, and stayed so through the caller's retries: a 503 with the
    wait it announced, at least a second (a `Retry-After: 0` would invite an immediate, futile retry)."""
    return ProblemError(503, "upstream-unavailable", title, detail, code="upstream_unavailable",
                        headers={"Retry-After": str(max(1, math.ceil(retry_after or 1)))})
