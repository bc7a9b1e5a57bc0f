"""Shared value types of every contract: money, identifiers, cursor pages.

Money is a decimal string plus an ISO 4217 code, never a float, so amounts survive
every hop (JSON, vendor wire formats, databases) without rounding drift.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Generic, TypeVar

import msgspec
from msgspec import Meta

__all__ = [
    "ENTITY_CODE",
    "IDEMPOTENCY_KEY_PATTERN",
    "Currency",
    "FrozenStruct",
    "Hours",
    "Money",
    "NonEmpty",
    "Page",
    "Struct",
    "VendorRef",
]

Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code.", examples=["USD"])]
# msgspec cannot bound a Decimal; non-negative hours are checked where they enter (mappings, rules).
Hours = Annotated[Decimal, Meta(description="Duration in decimal hours.", examples=["7.5"])]

ENTITY_CODE = r"[A-Z]{2}[0-9]{2}"
"""A legal entity's code (US01): two letters and two digits, unanchored to compose into larger patterns."""

MONTH_PATTERN = r"^(000[1-9]|00[1-9]\d|0[1-9]\d{2}|[1-9]\d{3})-(0[1-9]|1[0-2])$"
"""YYYY-MM naming a month that exists (year 0001 on, month 01-12): a period every API accepts as one. The
first contracts published `^\\d{4}-\\d{2}$` and refused `2026-13` with a 422 (or, on a listing, failed)."""

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:~+/=-]{8,255}$"
"""What an `Idempotency-Key` may be: 8 to 255 characters of letters, digits and `._:~+/=-` (a UUID fits)."""

DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
"""How a Decimal travels in a request (amounts, hours, rates): plain digits with an optional fraction, as text.
Not a JSON number (a binary float to most parsers), not `NaN`, `1e5`, ` 1` or `1_000`, which Python's
Decimal would read; the gateway refuses each with a 422 and the documents publish this pattern."""

NonEmpty = Annotated[str, Meta(min_length=1)]
"""A text field of a request contract that must say something: an empty name, id or email is refused with a
422 at the gateway rather than forwarded to a vendor that rejects it."""

# Spaces spelled out: `\s` differs between Python's regex (which counts \x1c-\x1f) and ECMA-262's.
Email = Annotated[str, Meta(min_length=1, pattern=r"^[^@ \t\n\r\f\v]+@[^@ \t\n\r\f\v]+$",
                            description="An email address: one `@` with text on both sides.")]
"""An address a PSA can store: it refuses one without `@` (422), so the contract says so before the call."""

T = TypeVar("T")


class Struct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=False):
    """Base of every contract object: keyword-only, strict about unknown fields."""


class FrozenStruct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Base of immutable contract values (money, references, lines)."""


class Money(FrozenStruct, frozen=True):
    """An amount in one currency."""

    amount: Annotated[Decimal, Meta(description="Decimal amount as a string.", examples=["1250.00"])]
    currency: Currency


class VendorRef(FrozenStruct, frozen=True):
    """Where a canonical record lives in a vendor system."""

    system: Annotated[str, Meta(description="Vendor system name.", examples=["netsuite"])]
    id: Annotated[str, Meta(description="The record's id in that system.")]


class Page(Struct, Generic[T]):
    """One page of a cursor-paged list; `next` is absent on the last page."""

    items: list[T]
    next_cursor: Annotated[str | None, Meta(description="Opaque cursor of the next page.")] = None
