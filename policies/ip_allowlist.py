"""IP allow-list per consumer: a client id may be restricted to known networks.

Runs right after authentication (the consumer is known) and before anything that
costs: a stolen credential used from elsewhere is refused with 403. The caller's
address is the TCP peer; `X-Forwarded-For` counts only when that peer is one of the
configured trusted proxies, and then its right-most untrusted hop is taken, so a
client cannot claim an address by sending the header itself.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from contracts.problems import ProblemError
from policies.base import Policy, RequestContext
from policies.registry import PolicyFactory

__all__ = ["FACTORY", "IpAllowList", "IpAllowListConfig", "client_address"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class IpAllowListConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    clients: Annotated[dict[str, tuple[str, ...]], Meta(description=(
        "client_id -> CIDR blocks it may call from; clients not named are unrestricted."))] = {}
    trusted_proxies: Annotated[tuple[str, ...], Meta(description=(
        "CIDR blocks of load balancers whose X-Forwarded-For is believed."))] = ()

    def __post_init__(self) -> None:
        for cidr in [*self.trusted_proxies, *(c for blocks in self.clients.values() for c in blocks)]:
            ipaddress.ip_network(cidr, strict=False)  # ValueError names the bad block at load time


def _networks(blocks: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(b, strict=False) for b in blocks)


def client_address(peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]) -> Address | None:
    """The caller's address: the peer, or the right-most untrusted X-Forwarded-For hop behind trusted proxies."""
    try:
        address: Address = ipaddress.ip_address(peer or "")
    except ValueError:
        return None
    if not forwarded_for or not any(address in n for n in trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return None
        if not any(address in n for n in trusted):
            return address
    return address


class IpAllowList(Policy[IpAllowListConfig]):
    name: ClassVar[str] = "ip_allowlist"
    order: ClassVar[int] = 1400  # right after auth (1450)

    def __init__(self, config: IpAllowListConfig) -> None:
        super().__init__(config)
        self._clients = {cid: _networks(blocks) for cid, blocks in config.clients.items()}
        self._trusted = _networks(config.trusted_proxies)

    async def on_request(self, ctx: RequestContext) -> None:
        if ctx.principal is None or not self._clients:
            return
        allowed = self._clients.get(ctx.principal.client_id)
        if allowed is None:
            return
        peer = ctx.request.scope.get("client")
        address = client_address(peer[0] if peer else None, ctx.request.headers.get("x-forwarded-for"),
                                 self._trusted)
        if address is None or not any(address in n for n in allowed):
            raise ProblemError(403, "forbidden", "Address not allowed",
                               f"Client {ctx.principal.client_id} may not call from {address or 'an unknown address'}.",
                               code="ip_not_allowed")


FACTORY = PolicyFactory(name="ip_allowlist", shared=True, build=lambda b: IpAllowList(b.bindings.ip_allowlist()))
"""Registered in the entry-point group psconnect.policies; consumers' `ip_allow` and `trusted_proxies` configure it."""
