"""Opaque cursors: one codec for every list psconnect serves.

A cursor is a msgspec Struct of the list's own position (an offset, a vendor's next
link, an id to resume after) wrapped with the identifier of the list that issued it,
JSON-encoded and base64url'd without padding, so clients cannot depend on its shape.
Anything that does not decode into the list's Struct — forged, truncated, or issued by
another list, even one whose position looks the same (every store list pages by
offset) — is the same 422 problem on `cursor` everywhere
(`contracts.problems.invalid_cursor`). A list checks what the Struct alone cannot
(ranges, that the cursor names this list's query) and raises `invalid_cursor` itself.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final, TypeVar

import msgspec

from contracts.problems import invalid_cursor

__all__ = ["CURSOR_MAX_LENGTH", "CURSOR_PATTERN", "Offset", "decode_cursor", "decode_position", "encode_cursor",
           "encode_position"]

T = TypeVar("T")

CURSOR_PATTERN: Final = r"^[A-Za-z0-9_-]+$"
"""What every cursor looks like: unpadded base64url (published on every list's `cursor` parameter)."""
CURSOR_MAX_LENGTH: Final = 2048
"""Longest cursor any list issues or accepts (a vendor's next link fits well inside)."""
_SHAPE: Final = re.compile(CURSOR_PATTERN)


class _Bound(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The envelope of every cursor: the issuing list (`l`) and its position (`p`)."""

    l: str  # noqa: E741 - one letter keeps cursors short; it is never read by a person
    p: msgspec.Raw


def encode_position(position: msgspec.Struct, list_id: str) -> str:
    """The opaque form of a position in the list `list_id` (e.g. `crm.accounts`)."""
    raw = msgspec.json.encode(_Bound(l=list_id, p=msgspec.Raw(msgspec.json.encode(position))))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_position(cursor: str, type_: type[T], list_id: str) -> T:
    """The position a cursor of `encode_position` holds for `list_id`; any other is `invalid_cursor`."""
    if len(cursor) > CURSOR_MAX_LENGTH or not _SHAPE.match(cursor):
        raise invalid_cursor()
    try:
        bound = msgspec.json.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)), type=_Bound)
        if bound.l != list_id:
            raise invalid_cursor("The cursor was issued by another list.")
        return msgspec.json.decode(bound.p, type=type_)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise invalid_cursor() from exc


class Offset(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A store list's position: rows to skip."""

    o: int


def encode_cursor(offset: int, list_id: str) -> str:
    """The cursor of the store list `list_id` that resumes after `offset` rows."""
    return encode_position(Offset(offset), list_id)


def decode_cursor(cursor: str | None, list_id: str) -> int:
    """The offset a cursor of the store list `list_id` resumes at; no cursor is the first page."""
    if not cursor:
        return 0
    offset = decode_position(cursor, Offset, list_id).o
    if offset < 0:
        raise invalid_cursor()
    return offset
