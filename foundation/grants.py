"""Which legal entities a caller may see: the token's grant, narrowed by what the request asks for.

A consumer may be restricted to legal entities (the `legal_entities` claim of its token,
`Principal.legal_entities`). Every layer — system, process and experience APIs — filters
its data by the set this module resolves, so the restriction holds on the data itself,
not only on the route. Grants may name an entity by code (`US01`) or by ERP id
(`LE-US01`, or the ERP's own id); `aliases` resolve each to the code.

The rule every layer applies, through `Grant`:
- a list holds only the granted entities' records (possibly fewer than `limit` on a page);
- a request that names another entity (a filter, a body's entity) is a 403 problem
  `legal_entity_forbidden` and changes nothing;
- another entity's record fetched by id is a 404, as if it did not exist;
- what cannot be attributed to an entity at all is hidden from (and refused to) a
  restricted caller; an unrestricted caller sees everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from contracts.problems import FieldError, ProblemError
from foundation.identity import RequestContext

if TYPE_CHECKING:
    from litestar import Request

__all__ = ["Entities", "Grant", "entity_forbidden", "entity_grant", "grant_of", "resolve_entities"]

Entities = frozenset[str] | None
"""Entity codes a caller may see; None = every entity."""


def entity_grant(request: Request[Any, Any, Any], *, outside_gateway: Entities = frozenset()) -> Entities:
    """The legal entities the caller's token grants, as written in the token; None = unrestricted.

    Behind the gateway every governed request carries the policy chain's context: without a
    verified principal there it sees nothing. `outside_gateway` is what a router mounted with
    no policy chain at all sees (a vendor's test harness mounts the system routers bare, where
    there is no caller to restrict; the experience APIs keep the strict default).
    """
    ctx = request.scope.get("state", {}).get("policy_context")
    if not isinstance(ctx, RequestContext):
        return outside_gateway
    if ctx.principal is None:
        return frozenset()
    return ctx.principal.legal_entities


def entity_forbidden(code: str) -> ProblemError:
    """The 403 for a request that names (or writes to) a legal entity outside the caller's grant."""
    return ProblemError(403, "forbidden", "Legal entity not granted",
                        f"This client may not read or write legal entity {code}.", code="legal_entity_forbidden")


def resolve_entities(grant: Entities, requested: str | None, aliases: Mapping[str, str]) -> Entities:
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


class Grant:
    """One request's grant, resolved to entity codes: what it may see, and the checks that enforce it.

    `entities` None = unrestricted. `aliases` (code, ERP ids -> code) lets a record or a request
    name an entity by any of its ids.
    """

    __slots__ = ("aliases", "entities")

    def __init__(self, entities: Entities, aliases: Mapping[str, str] | None = None) -> None:
        self.aliases: Mapping[str, str] = aliases or {}
        self.entities = None if entities is None else frozenset(self.aliases.get(e, e) for e in entities)

    @property
    def restricted(self) -> bool:
        return self.entities is not None

    def code(self, entity: str | None) -> str | None:
        """The code of an entity named by code or any ERP id (None when unknown or not given)."""
        return None if entity is None else self.aliases.get(entity, entity)

    def allows(self, entity: str | None) -> bool:
        """May the caller see a record of `entity`? A record of no known entity: only when unrestricted."""
        if self.entities is None:
            return True
        return entity is not None and self.code(entity) in self.entities

    def allows_all(self, entities: Iterable[str | None]) -> bool:
        return all(self.allows(e) for e in entities)

    def require(self, entity: str | None) -> None:
        """403 unless the caller may act on `entity` (a request's filter or a write's target)."""
        if not self.allows(entity):
            raise entity_forbidden(self.code(entity) or "(none)")

    def found(self, entity: str | None, what: str, record_id: str) -> None:
        """404 unless the caller may see this record: another entity's record does not exist for it."""
        if not self.allows(entity):
            raise ProblemError(404, "not-found", f"{what} not found", f"No {what.lower()} {record_id!r}.")


def grant_of(request: Request[Any, Any, Any], aliases: Mapping[str, str] | None = None, *,
             outside_gateway: Entities = None) -> Grant:
    """The request's `Grant` (system and process APIs: a router mounted outside the gateway is unrestricted)."""
    return Grant(entity_grant(request, outside_gateway=outside_gateway), aliases)
