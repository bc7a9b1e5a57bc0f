"""The legal-entity grant on the system APIs: how each domain knows a record's entity.

The rule is `foundation.grants` (lists filtered, a named other entity 403, another entity's
record 404, what cannot be attributed hidden from restricted callers). The ERP owns the
legal entities and the projects, so it is the directory every domain asks:

- ERP: legal entities by code; customers, projects, employees, invoices and accounting
  periods by their `legal_entity_id` (a period of no entity is firm-wide: visible to all);
  posted time and credit memos by their project; a time-posting batch by its
  `legal_entity_id` and every line's project.
- CRM: an opportunity by `legal_entity_code` (the entity the deal is booked to). An account
  has no entity of its own (its deals may be booked to several): a restricted caller sees
  the accounts with at least one deal booked to a granted entity. A new account has no deal,
  so a restricted caller cannot create one (403).
- PSA and time: a project (and its assignments, time entries, timesheets, uninvoiced time)
  by the ERP project of the same external id (`PRJ-…`; psconnect keys delivery projects
  by it); a rate card by `legal_entity_code`. A PSA user carries no entity (HR knows the
  worker's, the PSA does not): a restricted caller cannot upsert one (403).
- HR: workers and cost centers by `legal_entity_code`.

The directory is read through the gateway with the process APIs' service identity
(unrestricted) and cached briefly; a project created since the last read is unattributed
for at most `ttl` seconds, i.e. hidden from restricted callers — never shown to the wrong one.
Routers mounted outside the gateway (no policy chain) are unrestricted and need no directory.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

import httpx
import msgspec
from litestar import Request

from contracts.common import Page
from contracts.erp import ErpProject, LegalEntity
from contracts.problems import ProblemError
from foundation.grants import Grant, entity_grant

__all__ = ["DIRECTORY_STATE_KEY", "EntityDirectory", "ErpDirectory", "SystemScope", "kept", "system_scope"]

DIRECTORY_STATE_KEY = "entity_directory"
T = TypeVar("T")


class EntityDirectory(Protocol):
    """Legal-entity aliases (code, ERP ids -> code) and each ERP project's entity code, by external id."""

    async def aliases(self) -> Mapping[str, str]: ...

    async def project_entities(self) -> Mapping[str, str]: ...


class ErpDirectory:
    """The directory as the canonical ERP API (`/system/erp/v1`) tells it, cached for `ttl` seconds."""

    def __init__(self, http: httpx.AsyncClient, token: Callable[[], Awaitable[str]], *, ttl: float = 15.0) -> None:
        self._http, self._token, self._ttl = http, token, ttl
        self._read_at = float("-inf")
        self._aliases: dict[str, str] = {}
        self._projects: dict[str, str] = {}

    async def aliases(self) -> Mapping[str, str]:
        await self._refresh()
        return self._aliases

    async def project_entities(self) -> Mapping[str, str]:
        await self._refresh()
        return self._projects

    async def _refresh(self) -> None:
        if time.monotonic() - self._read_at < self._ttl:
            return
        entities = await self._all("/system/erp/v1/legal-entities", LegalEntity)
        aliases = {**{e.id: e.code for e in entities}, **{f"LE-{e.code}": e.code for e in entities},
                   **{e.code: e.code for e in entities}}
        projects = await self._all("/system/erp/v1/projects", ErpProject)
        self._aliases = aliases
        self._projects = {p.external_id: aliases.get(p.legal_entity_id, p.legal_entity_id) for p in projects}
        self._read_at = time.monotonic()

    async def _all(self, path: str, type_: type[T]) -> list[T]:
        items: list[T] = []
        cursor: str | None = None
        headers = {"Authorization": f"Bearer {await self._token()}"}
        while True:
            params: dict[str, str | int] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            response = await self._http.get(path, params=params, headers=headers)
            if response.status_code != 200:  # the ERP cannot say whose a record is: answer nothing, not everything
                raise ProblemError(503, "vendor-unavailable", "Legal entities cannot be resolved",
                                   f"The ERP answered {response.status_code} to {path}; retry shortly.",
                                   code="vendor_unavailable",
                                   headers={"Retry-After": response.headers.get("Retry-After", "5")})
            page = msgspec.json.decode(response.content, type=Page[type_])  # type: ignore[valid-type]
            items.extend(page.items)
            cursor = page.next_cursor
            if not cursor:
                return items


class _NoDirectory:
    """No directory configured: entities are known only by code, projects not at all (hidden when restricted)."""

    async def aliases(self) -> Mapping[str, str]:
        return {}

    async def project_entities(self) -> Mapping[str, str]:
        return {}


class SystemScope:
    """One request's grant on a system API, with the directory to attribute projects."""

    def __init__(self, grant: Grant, directory: EntityDirectory) -> None:
        self.grant = grant
        self._directory = directory
        self._projects: Mapping[str, str] | None = None

    @property
    def restricted(self) -> bool:
        return self.grant.restricted

    async def project_entity(self, external_id: str | None) -> str | None:
        """The entity code of the ERP project with this external id; None = unknown project."""
        if external_id is None:
            return None
        if self._projects is None:
            self._projects = await self._directory.project_entities()
        return self._projects.get(external_id)

    async def project_filter(self) -> Callable[[str | None], bool]:
        """A test of project external ids against the grant, for filtering a page."""
        if not self.restricted:
            return lambda _: True
        if self._projects is None:
            self._projects = await self._directory.project_entities()
        projects, grant = self._projects, self.grant
        return lambda external_id: external_id is not None and grant.allows(projects.get(external_id))

    async def allows_project(self, external_id: str | None) -> bool:
        return not self.restricted or self.grant.allows(await self.project_entity(external_id))

    async def require_projects(self, external_ids: Iterable[str]) -> None:
        """403 unless every project named is one of a granted entity (writes aimed at projects)."""
        if not self.restricted:
            return
        for external_id in dict.fromkeys(external_ids):
            self.grant.require(await self.project_entity(external_id))


async def system_scope(request: Request[Any, Any, Any]) -> SystemScope:
    """The grant of this request on a system API (unrestricted outside the gateway)."""
    entities = entity_grant(request, outside_gateway=None)
    directory: EntityDirectory = request.app.state.get(DIRECTORY_STATE_KEY) or _NoDirectory()
    if entities is None:
        return SystemScope(Grant(None), directory)
    return SystemScope(Grant(entities, await directory.aliases()), directory)


def kept(page: Page[T], keep: Callable[[T], bool]) -> Page[T]:
    """The page with only the items `keep` admits; the cursor still continues the vendor's list."""
    return Page(items=[i for i in page.items if keep(i)], next_cursor=page.next_cursor)
