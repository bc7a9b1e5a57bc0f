"""A client that sends half a body cannot hold a connection of `psconnect serve` (issue 12, fault 8).

Raw sockets against a started server: headers announcing a body, then only part of it. The
outside test saw such connections held 15 s and more, 300 of them never closed. Now the body
must arrive within PSCONNECT_BODY_READ_TIMEOUT (set to 2 s here): the client gets a 408 problem
and the connection is closed; a request refused before its body is read (401) closes at once.
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.live_server import served

BOUND = 2.0
MARGIN = 3.0  # scheduling slack on a shared two-core machine; still far below the 15 s seen before
PATH = "/system/crm/v1/accounts/by-external-id/EXT-SLOW"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    home = tmp_path_factory.mktemp("slow-body")
    with served(home, env={"PSCONNECT_BODY_READ_TIMEOUT": str(BOUND)}) as base:
        creds = json.loads((home / "demo-client.json").read_text())
        token = httpx.post(f"{base}/oauth2/token", auth=(creds["client_id"], creds["client_secret"]),
                           data={"grant_type": "client_credentials", "scope": "system.crm:write"}).json()
        port = urlsplit(base).port
        assert port is not None
        yield port, token["access_token"]


def _half_body(port: int, token: str | None) -> tuple[float, bytes]:
    """Send headers announcing 200 bytes and only 10 of them; seconds until the server closed, and what it said."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (f"PUT {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Content-Type: application/json\r\n"
            "Content-Length: 200\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(BOUND + MARGIN + 10)
        started = time.monotonic()
        sock.sendall(head.encode() + b'{"name": "')
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            return float("inf"), answer
        return time.monotonic() - started, answer


def test_half_a_body_is_answered_408_and_the_connection_closed(server: tuple[int, str]) -> None:
    port, token = server
    took, answer = _half_body(port, token)
    assert took <= BOUND + MARGIN, f"connection held {took:.1f} s"
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b"connection: close" in rest.lower() and b'"code":"body_timeout"' in rest


def test_a_request_refused_before_its_body_closes_at_once(server: tuple[int, str]) -> None:
    port, _ = server
    took, answer = _half_body(port, None)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:300]
    assert took <= BOUND + MARGIN, f"connection held {took:.1f} s after the 401"


def test_many_half_bodies_are_all_closed_within_the_bound(server: tuple[int, str]) -> None:
    port, token = server
    count = 60
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(lambda i: _half_body(port, token if i % 2 else None), range(count)))
    held = sorted(took for took, _ in results)
    assert held[-1] <= BOUND + MARGIN, f"slowest connection held {held[-1]:.1f} s"
    assert time.monotonic() - started <= BOUND + MARGIN + 5
    assert all(answer.split(b" ", 2)[1] in (b"408", b"401", b"429") for _, answer in results), [
        a[:40] for _, a in results]
