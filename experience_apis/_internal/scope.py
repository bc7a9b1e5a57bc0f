"""Which legal entities a caller may see: the token's grant, narrowed by what the request asks for.

A consumer may be restricted to legal entities (the `legal_entities` claim of its token,
`Principal.legal_entities`). Stores filter their queries by the set this module resolves,
so the restriction holds on the data itself, not only on the route. Grants may name an
entity by code (`US01`) or by ERP id (`LE-US01`); both resolve to the code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Request

from contracts.problems import FieldError, ProblemError
from foundation.identity import principal_of

__all__ = ["entity_grant", "resolve_entities"]


def entity_grant(request: Request[Any, Any, Any]) -> frozenset[str] | None:
    """The legal entities the caller's token grants, as written in the token; None = unrestricted."""
    principal = principal_of(request)
    if principal is None:
        return frozenset()  # no verified principal: nothing (the gateway never routes such a request here)
    return principal.legal_entities


def resolve_entities(grant: frozenset[str] | None, requested: str | None,
                     aliases: Mapping[str, str]) -> frozenset[str] | None:
    """The entity codes a query may read; None = every entity.

    `aliases` maps every known code and ERP id to its code. An unknown requested entity is a
    422 on `legal_entity` (well-formed, but no such entity); a known one outside the grant is a
    403 (the caller learns it exists, which the catalog of legal entities tells anyway, but not
    its figures).
    """
    allowed = None if grant is None else frozenset(aliases.get(g, g) for g in grant)
    if requested is None:
        return allowed
    code = aliases.get(requested)
    if code is None:
        raise ProblemError(422, "validation-error", "Validation failed", f"Unknown legal entity {requested!r}.",
                           errors=[FieldError(pointer="legal_entity", detail="unknown legal entity")],
                           code="unknown_legal_entity")
    if allowed is not None and code not in allowed:
        raise ProblemError(403, "forbidden", "Legal entity not granted",
                           f"This client may not read legal entity {code}.", code="legal_entity_forbidden")
    return frozenset({code})
