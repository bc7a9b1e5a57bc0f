"""Parameters and response helpers every domain router shares."""

from __future__ import annotations

from typing import Annotated, TypeVar

from litestar import Response
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter

from foundation.paging import CURSOR_MAX_LENGTH, CURSOR_PATTERN

__all__ = ["Cursor", "Limit", "created_spec", "upserted"]

T = TypeVar("T")

Limit = Annotated[int, QueryParameter(ge=1, le=200, description="Page size.")]
Cursor = Annotated[str | None, QueryParameter(
    description="Opaque cursor: the `next_cursor` of the previous page of this same list; any other value is a 422 "
                "`invalid_cursor`.",
    pattern=CURSOR_PATTERN, max_length=CURSOR_MAX_LENGTH)]


def upserted(record: T, created: bool) -> Response[T]:
    """201 when the upsert created the record, 200 when it updated an existing one."""
    return Response(record, status_code=201 if created else 200)


def created_spec(model: type) -> dict[int, ResponseSpec]:
    return {201: ResponseSpec(data_container=model, description="Created.")}
