"""The legal entity a system API call is for: the one routing parameter every domain router takes.

Each legal entity may run on its own vendor account (the connections file,
`system_apis/connections.py`); `system_apis/routing.py` reads `legal_entity` to pick it.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any

from litestar import Request
from litestar.params import QueryParameter

from contracts.common import ENTITY_CODE
from contracts.problems import FieldError, ProblemError
from system_apis.grants import system_scope
from system_apis.pacing import bind_consumer

__all__ = ["ENTITY_PARAMETER", "bind_call", "legal_entity"]

legal_entity: ContextVar[str | None] = ContextVar("psconnect_legal_entity", default=None)
"""The `legal_entity` query parameter of the system API request being served (None: not given)."""

ENTITY_PATTERN = f"^{ENTITY_CODE}$"
_CODE = re.compile(ENTITY_PATTERN)

ENTITY_PARAMETER: dict[str, Any] = {"legal_entity": QueryParameter(
    annotation=str | None, name="legal_entity", required=False, default=None, max_length=16, pattern=ENTITY_PATTERN,
    description="The legal entity (code, e.g. `US01`) whose system this call reaches: each legal entity may run on "
                "its own vendor account. Without it a list merges every account of the domain, a record by id goes "
                "to the account its id names (`<connection>:<id>`; an unprefixed id is the default account's), "
                "and a write carrying `legal_entity_id` goes to that entity's account.")}
"""A layered Litestar parameter of each domain router: published on every system API operation."""


async def bind_call(request: Request[Any, Any, Any]) -> None:
    """Before-request hook of every domain router: the consumer (for pacing) and the legal entity (for routing).

    A coroutine, so the variables are set in the handler's own context."""
    await bind_consumer(request)
    values = request.query_params.getall("legal_entity", [])
    entity: str | None = None
    if values:  # Litestar validates only the parameters a handler declares itself: one code, or absent
        if len(values) != 1 or not _CODE.fullmatch(values[0]):
            raise ProblemError(422, "validation-error", "Validation failed",
                               "legal_entity is one legal entity code (e.g. US01).",
                               errors=[FieldError(pointer="legal_entity", detail=f"must match {ENTITY_PATTERN}")],
                               code="validation_failed")
        entity = values[0]
    if entity is not None:
        (await system_scope(request)).grant.require(entity)  # another entity's system: 403
    legal_entity.set(entity)
