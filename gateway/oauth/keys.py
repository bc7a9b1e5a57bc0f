"""The token-signing keys: ES256, rotated, published as a JWKS, cached for verification.

Why ES256: signing is ~55 µs against ~300 µs for RS256 (STACK-NOTES), and every
token the gateway issues is signed here, while verification is cached per key.

Lifecycle of a key (table `signing_keys`, shared by every worker):

    active ──rotate()──► retired ──(retired_at + overlap)──► dropped
    (signs + published)  (published, verifies)              (unknown kid)

A new key is *published* at once but *signs* only once it is `refresh_interval`
old: by then every verifier has either loaded it or is allowed to reload on its
unknown kid, so no worker rejects a token signed by a key another worker just
created. Until then the previous key keeps signing. The overlap is therefore
token TTL + leeway + two cache periods, so a token signed just before (or just
after) a rotation stays valid until it expires.

The private JWK is stored as JSON in the database: whoever can read the
database can mint tokens; encrypting it at rest is left to the deployment.

Workers cache the keys. A verifier that meets an unknown `kid` reloads when that
could find it: the cache is empty or stale (`refresh_interval`), or the token was
issued after the last load (within the clock-skew `leeway`). The last case is
not hypothetical: a load can read the table after another worker stamped a new
key's `created_at` but before it committed, and the very first key signs at
once. Every such reload waits until `reload_gap` after the previous load began,
and concurrent misses share one, so a flood of forged kids (their `iat` is
whatever the forger writes) costs at most one query per gap; a request skips the
query when a load began after it arrived, since that load saw every key
committed before its token was signed.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from joserfc.jwk import ECKey, Key, KeySet

from foundation.db import metadata

__all__ = ["SIGNING_ALG", "SigningKeys", "signing_keys"]

SIGNING_ALG = "ES256"
_DAY = 86400.0

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", sa.String(128), primary_key=True),
    sa.Column("private_jwk", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
)


def _ts(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite returns naive datetimes
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass(frozen=True, slots=True)
class _StoredKey:
    kid: str
    private: Key
    public: Key
    created_at: float
    retired_at: float | None


class SigningKeys:
    """Active signing key, rotation, the published JWKS and the verification cache."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        token_ttl: int = 300,
        rotation_days: float = 30,
        leeway: int = 30,
        refresh_interval: float = 5.0,
        reload_gap: float = 0.5,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.token_ttl = token_ttl
        self.rotation_seconds = rotation_days * _DAY
        self.refresh_interval = refresh_interval
        self.leeway = leeway
        self.reload_gap = reload_gap
        # The old key signs for one more period after rotation, plus one period of stale cache elsewhere.
        self.overlap = token_ttl + leeway + 2 * refresh_interval
        self.clock = clock
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._keys: list[_StoredKey] = []
        self._loaded_at: float | None = None
        self._load_began = -math.inf  # monotonic time the last load began (reload pacing, see the docstring)
        self._signing: tuple[str, KeySet] | None = None

    # --- loading ---------------------------------------------------------------
    def _load(self) -> None:
        self._load_began = self.monotonic()
        now = self.clock()
        horizon = _dt(now - self.overlap)
        query = (sa.select(signing_keys)
                 .where(sa.or_(signing_keys.c.retired_at.is_(None), signing_keys.c.retired_at > horizon))
                 .order_by(signing_keys.c.created_at.desc()))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        keys = []
        for row in rows:
            private = ECKey.import_key(json.loads(row.private_jwk))
            public = ECKey.import_key(private.as_dict(private=False))
            keys.append(_StoredKey(row.kid, private, public, _ts(row.created_at) or now, _ts(row.retired_at)))
        self._keys = keys
        self._loaded_at = now

    def _stale(self) -> bool:
        return self._loaded_at is None or self.clock() - self._loaded_at >= self.refresh_interval

    def _signer(self, now: float) -> _StoredKey | None:
        current = self._current()
        if current is None or now - current.created_at >= self.refresh_interval:
            return current
        older = [k for k in self._published(now) if k.kid != current.kid and k.created_at <= current.created_at]
        return max(older, key=lambda k: k.created_at) if older else current

    def _published(self, now: float) -> list[_StoredKey]:
        return [k for k in self._keys if k.retired_at is None or k.retired_at + self.overlap > now]

    def _current(self) -> _StoredKey | None:
        live = [k for k in self._keys if k.retired_at is None]
        return max(live, key=lambda k: k.created_at) if live else None

    # --- signing ---------------------------------------------------------------
    def active(self) -> Key:
        """The private key that signs new tokens; created on first use, rotated when too old."""
        with self._lock:
            if self._stale():
                self._load()
            current = self._current()
            if current is None or self.clock() - current.created_at >= self.rotation_seconds:
                self._rotate_locked()
            signer = self._signer(self.clock())
            assert signer is not None
            return signer.private

    def signing_keyset(self) -> KeySet:
        """A KeySet holding only the active key (joserfc then stamps its `kid` into the header).

        Cached per key: authlib re-importing a key per token costs ~40 ms (STACK-NOTES pitfall 5).
        """
        key = self.active()
        kid = str(key.kid)
        if self._signing is None or self._signing[0] != kid:
            self._signing = (kid, KeySet([key]))
        return self._signing[1]

    def rotate(self) -> str:
        """Make a new key, retire the others (published for the overlap); returns the new kid.

        The new key signs from `refresh_interval` later on (see the module docstring).
        """
        with self._lock:
            return self._rotate_locked()

    def _rotate_locked(self) -> str:
        now = self.clock()
        key = ECKey.generate_key("P-256", {"alg": SIGNING_ALG, "use": "sig"}, private=True, auto_kid=True)
        kid = str(key.kid)
        with self.engine.begin() as conn:
            conn.execute(signing_keys.insert().values(
                kid=kid, private_jwk=json.dumps(key.as_dict(private=True)), created_at=_dt(now), retired_at=None))
            conn.execute(signing_keys.update()
                         .where(signing_keys.c.kid != kid, signing_keys.c.retired_at.is_(None))
                         .values(retired_at=_dt(now)))
        self._load()
        return kid

    # --- publishing and verification ---------------------------------------------
    def jwks(self) -> dict[str, Any]:
        """The public JWKS: the active key and retired keys still inside the overlap window."""
        self.active()  # publish a key from the first request on, and refresh a stale cache
        keys = self._published(self.clock())
        return {"keys": [dict(k.public.as_dict(private=False)) for k in keys]}

    def verification_key(self, kid: str) -> Key | None:
        """The public key for `kid` from the cache only (no database on the fast path)."""
        now = self.clock()
        for k in self._keys:
            if k.kid == kid:
                return k.public if k.retired_at is None or k.retired_at + self.overlap > now else None
        return None

    def reload_delay(self, issued_at: float | None) -> float | None:
        """For a token whose kid is not cached: None if no reload could find its key, else seconds to wait first.

        `issued_at` is the token's unverified `iat`: it only decides whether a reload is worth it, never
        how often one runs (see the module docstring).
        """
        if self._keys and not self._stale():
            fresh = issued_at is not None and self._loaded_at is not None and \
                issued_at + self.leeway + 1 >= self._loaded_at  # +1: iat is whole seconds
            if not fresh:
                return None
        return max(0.0, self._load_began + self.reload_gap - self.monotonic())

    def reload_unless_loaded_since(self, arrived: float) -> None:
        """Reload, unless a load began at or after `arrived` (monotonic): that one saw what this one would."""
        with self._lock:
            if self._load_began < arrived:
                self._load()

    def refresh(self) -> bool:
        """Reload from the database unless that happened within `refresh_interval`; True if reloaded."""
        with self._lock:
            if self._keys and not self._stale():  # an empty cache (no key yet) may always reload
                return False
            self._load()
            return True
