"""Throttling of failed authentications: portal sign-in and the token endpoint.

A wrong password or client secret costs the server a hash and the attacker nothing,
so failures are counted per identity (account email, OAuth client id) and per source
address in the gateway's counter store (memory in embedded mode, Redis when
`REDIS_URL` is set, so every worker sees the same counts). Once either count reaches
its limit, further attempts are refused with a Retry-After until the window (one
minute from the first counted failure) ends — a right secret included, or the refusal
would itself be an oracle.

Counting is reserve-then-settle, so a burst of parallel guesses cannot all slip
through before the first failure is recorded: each attempt atomically adds one to
both counters before any credential is checked; past a limit it takes its reservation
back and is refused; a successful attempt (or one that failed for another reason
than the credentials) takes it back afterwards, and only a failed authentication
keeps it. Consequently a refused attempt is not a failure: 50 wrong secrets for one
client spend that client's budget and just its own share of the address's, so another
client calling from the same address keeps working, while spraying many client ids
from one address meets the address limit. (The price: more than the limit of
*simultaneous* attempts for one identity or address are refused too.)

When the counter store is down the throttle admits (the store logs the outage once):
a Redis outage must not lock every consumer out of tokens.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import time

from policies.ip_allowlist import client_address
from policies.stores import CounterStore, StoreUnavailable

__all__ = ["FailureThrottle"]

log = logging.getLogger("psconnect.policies.failure_throttle")
WINDOW = 60


class FailureThrottle:
    """Counts failures of `kind` ("signin", "token") per identity and per address, per minute.

    Args:
        store: the gateway's counter store (`PolicyRuntime.limits`).
        per_identity: failures of one account / client id a minute before its attempts are refused.
        per_address: failures from one source address a minute before its attempts are refused.
        trusted_proxies: CIDR blocks whose X-Forwarded-For is believed (the bindings' `trusted_proxies`).
    """

    def __init__(self, store: CounterStore, *, per_identity: int = 10, per_address: int = 30,
                 trusted_proxies: tuple[str, ...] = ()) -> None:
        self.store = store
        self.per_identity = per_identity
        self.per_address = per_address
        self.trusted = tuple(ipaddress.ip_network(b, strict=False) for b in trusted_proxies)

    def address(self, peer: str | None, forwarded_for: str | None) -> str:
        """The caller's address as the IP allow-list policy sees it (proxies in `trusted_proxies` skipped)."""
        found = client_address(peer, forwarded_for, self.trusted)
        return str(found) if found is not None else (peer or "unknown")

    def _keys(self, kind: str, identity: str, address: str) -> list[tuple[str, int]]:
        keys = [(f"authfail/{kind}/address/{address}", self.per_address)]
        if identity:
            keys.append((f"authfail/{kind}/identity/{identity.lower()}", self.per_identity))
        return keys

    async def _add(self, key: str, amount: int) -> int:
        storage = self.store.storage
        return int(await self.store.guarded(lambda: storage.incr(key, WINDOW, amount)))

    async def reserve(self, kind: str, identity: str, address: str) -> int | None:
        """Count this attempt; seconds to wait (nothing counted) when the identity or address failed too often."""
        added: list[str] = []
        try:
            for key, limit in self._keys(kind, identity, address):
                count = await self._add(key, 1)
                added.append(key)
                if count > limit:
                    storage = self.store.storage
                    expires = await self.store.guarded(functools.partial(storage.get_expiry, key))
                    for taken in added:
                        await self._add(taken, -1)
                    return max(1, math.ceil(expires - time.time()))
        except StoreUnavailable:
            return None
        return None

    async def release(self, kind: str, identity: str, address: str) -> None:
        """Take back an attempt's reservation: it did not fail on its credentials."""
        try:
            for key, _ in self._keys(kind, identity, address):
                await self._add(key, -1)
        except StoreUnavailable:
            log.debug("reservation not released: the counter store is unavailable")
