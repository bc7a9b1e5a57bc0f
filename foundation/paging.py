"""Opaque cursors: one codec for every list psconnect serves.

A cursor is a msgspec Struct of the list's own position (an offset, a vendor's next
link, an id to resume after), JSON-encoded and base64url'd without padding, so clients
cannot depend on its shape. Anything that does not decode into the list's Struct —
forged, truncated, or issued by another list whose position looks different — is the
same 422 problem on `cursor` everywhere (`contracts.problems.invalid_cursor`). A list
checks what the Struct alone cannot (ranges, that the cursor names this list's query)
and raises `invalid_cursor` itself.
"""

from __future__ import annotations

import base64
import binascii
from typing import TypeVar

import msgspec

from contracts.problems import invalid_cursor

__all__ = ["Offset", "decode_cursor", "decode_position", "encode_cursor", "encode_position"]

T = TypeVar("T")


def encode_position(position: msgspec.Struct) -> str:
    """The opaque form of a list's position."""
    return base64.urlsafe_b64encode(msgspec.json.encode(position)).decode().rstrip("=")


def decode_position(cursor: str, type_: type[T]) -> T:
    """The position a cursor of `encode_position` holds; a cursor that is not one is `invalid_cursor`."""
    try:
        return msgspec.json.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)), type=type_)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise invalid_cursor() from exc


class Offset(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A store list's position: rows to skip."""

    o: int


def encode_cursor(offset: int) -> str:
    """The cursor of a store list that resumes after `offset` rows."""
    return encode_position(Offset(offset))


def decode_cursor(cursor: str | None) -> int:
    """The offset a store-list cursor resumes at; no cursor is the first page."""
    if not cursor:
        return 0
    offset = decode_position(cursor, Offset).o
    if offset < 0:
        raise invalid_cursor()
    return offset
