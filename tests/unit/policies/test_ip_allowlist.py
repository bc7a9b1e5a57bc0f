"""IP allow-list: which address counts as the caller's, and the config checked at load."""

from __future__ import annotations

import ipaddress

import msgspec
import pytest

from policies.ip_allowlist import IpAllowListConfig, client_address

PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)


class TestClientAddress:
    def test_the_peer_counts_when_no_proxy_is_trusted(self) -> None:
        assert str(client_address("203.0.113.9", "198.51.100.1", ())) == "203.0.113.9"

    def test_forwarded_for_counts_only_behind_a_trusted_proxy(self) -> None:
        assert str(client_address("10.1.2.3", "198.51.100.1", PROXIES)) == "198.51.100.1"
        assert str(client_address("203.0.113.9", "198.51.100.1", PROXIES)) == "203.0.113.9"

    def test_a_spoofed_left_hop_is_ignored(self) -> None:
        # the client sent "1.2.3.4"; the proxy appended the real address: the right-most untrusted hop wins
        assert str(client_address("10.1.2.3", "1.2.3.4, 198.51.100.7, 10.9.9.9", PROXIES)) == "198.51.100.7"

    def test_garbage_is_no_address(self) -> None:
        assert client_address("not-an-ip", None, ()) is None
        assert client_address("10.1.2.3", "evil", PROXIES) is None

    def test_ipv6_peer(self) -> None:
        assert str(client_address("2001:db8::1", None, ())) == "2001:db8::1"


def test_a_bad_cidr_is_refused_at_load() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"300\.1\.1\.0"):
        msgspec.convert({"clients": {"app-1": ["300.1.1.0/24"]}}, IpAllowListConfig)
