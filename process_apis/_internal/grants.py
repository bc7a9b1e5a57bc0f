"""The legal-entity grant on the process APIs: which runs, exceptions and events a caller sees.

The rule is `foundation.grants`. Each process says how its records are attributed (its
`api.py` provides a `Visibility` as the `visibility` dependency of its router):

- time-to-bill: a billing run by its subject's entity (`<entity>:<period>`; a run over `*`
  spans every entity and is hidden from restricted callers), an exception by its project
  or its run (`process_apis/attribution.py`, as the workbench does).
- provisioning: runs, exceptions and events by the opportunity they are about, booked to an
  entity in the CRM (read as the process's own service identity, which is unrestricted).
- worker-sync: a sync spans every entity's workers, so its runs and exceptions are hidden
  from restricted callers and a restricted caller cannot start one (403).

Restricted lists are filtered before paging (the page holds up to `limit` visible records);
unrestricted callers page in SQL as before. Another entity's record is a 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from contracts.common import Page
from contracts.problems import ProblemError
from foundation.grants import Grant
from foundation.paging import decode_cursor, encode_cursor

__all__ = ["Visibility", "filtered_page"]

T = TypeVar("T")
Predicate = Callable[[T], Awaitable[bool]]


class Visibility:
    """One request's view of a process's records; the default sees what its grant allows by entity."""

    def __init__(self, grant: Grant, *, run_entity: Callable[[str], Awaitable[str | None]],
                 exception_visible: Callable[[str, str | None], Awaitable[bool]] | None = None) -> None:
        self.grant = grant
        self._run_entity = run_entity
        self._exception_visible = exception_visible

    @property
    def restricted(self) -> bool:
        return self.grant.restricted

    async def subject(self, subject: str | None) -> bool:
        """Is a record about `subject` (a run's subject) visible?"""
        if not self.restricted:
            return True
        return subject is not None and self.grant.allows(await self._run_entity(subject))

    async def exception(self, subject: str, run_subject: str | None) -> bool:
        if not self.restricted:
            return True
        if self._exception_visible is not None:
            return await self._exception_visible(subject, run_subject)
        return await self.subject(run_subject) or await self.subject(subject)

    def missing(self, what: str, record_id: str) -> ProblemError:
        return ProblemError(404, "not-found", f"{what} not found", f"No {what.lower()} {record_id!r}.")


async def filtered_page(fetch: Callable[[int, str | None], Page[T]], keep: Callable[[T], Awaitable[bool]],
                        limit: int, cursor: str | None, list_id: str) -> Page[T]:
    """A page of the records `keep` admits, read through the store's own list (`fetch(limit, cursor)`).

    Its cursors count filtered records, so they are bound to `list_id` (the filtered list), never
    accepted by the unfiltered list of the same records.
    """
    offset = decode_cursor(cursor, list_id)
    kept: list[T] = []
    store_cursor: str | None = None
    while True:
        page = fetch(1000, store_cursor)
        kept.extend([item for item in page.items if await keep(item)])
        store_cursor = page.next_cursor
        if not store_cursor or len(kept) > offset + limit:
            break
    more = len(kept) > offset + limit
    return Page(items=kept[offset:offset + limit], next_cursor=encode_cursor(offset + limit, list_id) if more else None)
