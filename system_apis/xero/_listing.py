"""Paging a list that Xero cannot page as the contract does: the whole result is read once and kept for its next
pages.

Xero pages its Accounting collections by its own page number (100 records at a time) and its Projects time per
project; the contract pages by an opaque cursor over psconnect's own order and filters Xero's `where` cannot
express. Such a list is read whole and cut into pages. Its next pages come from that read, kept for `KEPT_FOR`
seconds (the last `KEPT_LISTS` lists of this adapter). Without it, every page of a long list read the whole list
from Xero again — pages × reads against 60 calls a minute, e.g. a reconciliation of an entity reading all its
invoices of a period — and a record changed between two pages shifted the rest under the cursor's offset. A page
asked after that time, or of another gateway worker, reads Xero again: slower, never wrong.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import msgspec

from contracts.common import Page
from contracts.problems import invalid_cursor
from foundation.paging import decode_position, encode_position

__all__ = ["KEPT_FOR", "Listings", "Offset", "sliced"]

T = TypeVar("T")
KEPT_FOR: Final = 120.0
KEPT_LISTS: Final = 8


class Offset(msgspec.Struct, frozen=True):
    q: str
    offset: int


def _position(list_id: str, q: str, cursor: str | None) -> int:
    """Where a page starts: 0 without a cursor, else the offset of a cursor this list (`q`) issued."""
    if cursor is None:
        return 0
    found = decode_position(cursor, Offset, list_id)
    if found.q != q or found.offset < 0:
        raise invalid_cursor("The cursor is not one this list issued.")
    return found.offset


def _cut(items: list[T], list_id: str, q: str, offset: int, limit: int) -> Page[T]:
    """The page of `items` from `offset`, with the next page's cursor (None on the last page)."""
    following = offset + limit
    if following >= len(items):
        return Page(items=items[offset:], next_cursor=None)
    return Page(items=items[offset:following], next_cursor=encode_position(Offset(q=q, offset=following), list_id))


def sliced(items: list[T], list_id: str, q: str, limit: int, cursor: str | None) -> Page[T]:
    """The page at `cursor` (the first without) of a list already in hand."""
    return _cut(items, list_id, q, _position(list_id, q, cursor), limit)


class Listings:
    """The lists an adapter has read whole and not yet paged to the end."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._kept: OrderedDict[tuple[str, str], tuple[float, list[Any]]] = OrderedDict()

    async def page(self, list_id: str, q: str, limit: int, cursor: str | None,
                   read: Callable[[], Awaitable[list[T]]]) -> Page[T]:
        """The page at `cursor` (the first without) of the list `q` (what the list was asked for); `read` reads
        the whole list from Xero, on a first page or when the kept one is gone."""
        offset = _position(list_id, q, cursor)
        key = (list_id, q)
        kept = self._kept.get(key)
        items: list[T]
        if offset and kept is not None and self._clock() - kept[0] < KEPT_FOR:
            items, fresh = kept[1], False
        else:
            items, fresh = await read(), True
        page = _cut(items, list_id, q, offset, limit)
        if page.next_cursor is None:
            self._kept.pop(key, None)  # paged to the end
        elif fresh:
            self._kept[key] = (self._clock(), items)
            self._kept.move_to_end(key)
            while len(self._kept) > KEPT_LISTS:
                self._kept.popitem(last=False)
        return page
