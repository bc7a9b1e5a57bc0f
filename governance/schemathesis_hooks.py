"""schemathesis hooks for `psconnect contracts test`: generated values a correct client would send.

Two values are valid only when the server issued or the client invented them for one purpose,
which no schema can express:

- a `cursor` is opaque: the documents declare its shape (unpadded base64url, bounded length)
  and that any cursor the same list did not issue is a 422 `invalid_cursor`. A generated
  cursor that matches the shape is dropped, so a positive case asks for the first page as a
  client without a `next_cursor` does; one that breaks the shape is kept, and must be refused.
- the uninvoiced report covers at most a year (`to` on or after `from`, within 365 days), a
  rule between two parameters that JSON Schema cannot state; a generated range that breaks
  it while both dates are well-formed is narrowed to one day, since the documents say so in words.
- an `Idempotency-Key` is unique per intended request; reusing one with another body is a
  422 by the IETF draft. A generated key that matches the declared pattern is replaced by a
  fresh UUID, so generated cases do not collide with each other's keys.

Loaded by schemathesis through SCHEMATHESIS_HOOKS (governance/live_test.py sets it).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import schemathesis

from contracts.common import IDEMPOTENCY_KEY_PATTERN
from foundation.paging import CURSOR_MAX_LENGTH, CURSOR_PATTERN

_CURSOR = re.compile(CURSOR_PATTERN)
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    """Right before each request, in every phase (the coverage phase bypasses `map_*` hooks)."""
    query, headers = case.query, case.headers
    cursor = query.get("cursor") if isinstance(query, dict) else None
    if isinstance(cursor, str) and len(cursor) <= CURSOR_MAX_LENGTH and _CURSOR.match(cursor):
        del query["cursor"]
    if isinstance(query, dict) and str(case.path).endswith("/reports/uninvoiced"):
        _one_year(query)
    for name in list(headers or {}):  # a case-insensitive mapping in some phases, a dict in others
        if name.lower() == "idempotency-key" and isinstance(headers[name], str) and _KEY.match(headers[name]):
            headers[name] = str(uuid.uuid4())


def _one_year(query: dict[str, Any]) -> None:
    try:
        start, end = dt.date.fromisoformat(str(query["from"])), dt.date.fromisoformat(str(query["to"]))
    except (KeyError, ValueError):
        return  # a missing or malformed date is the server's to refuse
    if not start <= end <= start + dt.timedelta(days=365):
        query["to"] = query["from"]
