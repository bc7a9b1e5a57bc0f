"""Opaque cursors for store lists: an offset, encoded so clients cannot depend on it."""

from __future__ import annotations

import base64

from contracts.problems import invalid_cursor

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        offset = int(value)
        if kind != "o" or offset < 0:
            raise ValueError(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_cursor() from exc
    return offset
