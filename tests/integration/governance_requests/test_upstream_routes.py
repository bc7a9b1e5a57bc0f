"""Remote upstream routes: a real upstream server on loopback, the real aiohttp hop, the chain in front."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from litestar import Litestar

from gateway.errors import EXCEPTION_HANDLERS
from gateway.observability import ObservedApp
from gateway.upstream import UpstreamPool, UpstreamRoute, upstream_routers
from policies.bindings import load_bindings
from policies.chain import PolicyChain
from policies.validation import RequestValidation, ValidationConfig
from tests.integration.governance_requests._app import API, CallerFromHeader

PREFIX = "/remote/v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Upstream:
    """A raw ASGI app that echoes what reached it; `/slow` never answers in time."""

    def __init__(self) -> None:
        self.hits = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.hits += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/slow":
            await asyncio.sleep(2)
        echo = {"method": scope["method"], "path": scope["path"], "query": scope["query_string"].decode(),
                "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
                "body_sha": hashlib.sha256(body).hexdigest(), "body_len": len(body)}
        if scope["path"] == "/sized":  # a declared length: `pad` bytes of padding make it as large as asked
            echo["pad"] = "x" * int(scope["query_string"].decode().partition("pad=")[2] or 0)
        payload = msgspec.json.encode(echo)
        sized = [(b"content-length", str(len(payload)).encode())] if scope["path"] == "/sized" else []
        await send({"type": "http.response.start", "status": 207, "headers": [
            (b"content-type", b"application/json"), (b"x-upstream", b"yes"), (b"connection", b"keep-alive, x-secret"),
            (b"x-secret", b"hop"), (b"keep-alive", b"timeout=5"), *sized]})
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, str]]:
    app, port = Upstream(), free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # uvicorn offers no started event
        if server.started:
            break
        await asyncio.sleep(0.01)
    yield app, f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def gateway_for(url: str, read_timeout: float = 5.0) -> tuple[httpx.AsyncClient, UpstreamPool]:
    pool = UpstreamPool()
    routers = upstream_routers([UpstreamRoute(api=API, prefix=PREFIX, url=url, timeout=read_timeout)], pool,
                               load_bindings().apis)
    chain = [CallerFromHeader(), RequestValidation(ValidationConfig())]
    app = Litestar(route_handlers=routers, middleware=[PolicyChain(load_bindings(), lambda api: chain)],
                   exception_handlers=EXCEPTION_HANDLERS, openapi_config=None)
    observed = ObservedApp(app)  # as in the gateway: correlation id and trace context set per request
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=observed), base_url="http://gw",  # type: ignore[arg-type]
                             headers={"X-Test-Client": "alpha"})
    return http, pool


class TestProxy:
    async def test_request_reaches_the_upstream_with_path_query_and_correlation(
            self, upstream: tuple[Upstream, str]) -> None:
        http, pool = await gateway_for(upstream[1])
        response = await http.get(f"{PREFIX}/things/42?expand=a&expand=b", headers={
            "X-Correlation-ID": "corr-12345678", "Connection": "x-private", "X-Private": "not for upstream",
            "Keep-Alive": "timeout=1"})
        await pool.aclose()
        assert response.status_code == 207
        echo = response.json()
        assert echo["method"] == "GET" and echo["path"] == "/things/42" and echo["query"] == "expand=a&expand=b"
        seen = echo["headers"]
        assert seen["x-correlation-id"] == "corr-12345678" and seen["traceparent"].startswith("00-")
        assert seen["x-forwarded-for"] == "127.0.0.1" and seen["x-test-client"] == "alpha"
        assert "x-private" not in seen and "keep-alive" not in seen
        assert response.headers["x-upstream"] == "yes"
        assert "x-secret" not in response.headers and "keep-alive" not in response.headers

    async def test_bodies_stream_through_intact(self, upstream: tuple[Upstream, str]) -> None:
        http, pool = await gateway_for(upstream[1])
        body = b'{"blob": "' + bytes(range(97, 123)) * 20_000 + b'"}'
        response = await http.post(f"{PREFIX}/upload", content=body, headers={"Content-Type": "application/json"})
        await pool.aclose()
        assert response.json()["body_sha"] == hashlib.sha256(body).hexdigest()
        assert response.json()["body_len"] == len(body)

    @pytest.mark.parametrize("pad", [0, 600_000])  # one piece below BUFFERED_BYTES, streamed above it
    async def test_declared_lengths_pass_through_whole_or_streamed(self, upstream: tuple[Upstream, str],
                                                                   pad: int) -> None:
        http, pool = await gateway_for(upstream[1])
        body = b'{"sku": "A-1", "quantity": 2}'
        response = await http.post(f"{PREFIX}/sized?pad={pad}", content=body,
                                   headers={"Content-Type": "application/json"})
        await pool.aclose()
        assert response.status_code == 207 and response.headers["x-upstream"] == "yes"
        assert "x-secret" not in response.headers
        echo = response.json()
        assert echo["body_sha"] == hashlib.sha256(body).hexdigest() and len(echo["pad"]) == pad
        if pad == 0:  # answered in one piece, with its length; the large one streamed, its length unknown up front
            assert response.headers["content-length"] == str(len(response.content))
        else:
            assert "content-length" not in response.headers and len(response.content) > 600_000

    async def test_the_policy_chain_runs_in_front(self, upstream: tuple[Upstream, str]) -> None:
        http, pool = await gateway_for(upstream[1])
        del http.headers["X-Test-Client"]
        refused = await http.get(f"{PREFIX}/things")
        bad_type = await http.post(f"{PREFIX}/things", content=b"x", headers={"X-Test-Client": "a",
                                                                              "Content-Type": "text/plain"})
        await pool.aclose()
        assert refused.status_code == 401 and bad_type.status_code == 415
        assert upstream[0].hits == 0


class TestUpstreamFailures:
    async def test_unreachable_upstream_is_a_502_problem(self) -> None:
        http, pool = await gateway_for(f"http://127.0.0.1:{free_port()}")
        response = await http.get(f"{PREFIX}/things")
        await pool.aclose()
        assert response.status_code == 502
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "upstream_unreachable"

    async def test_slow_upstream_is_a_504_problem(self, upstream: tuple[Upstream, str]) -> None:
        http, pool = await gateway_for(upstream[1], read_timeout=0.3)
        response = await http.get(f"{PREFIX}/slow")
        await pool.aclose()
        assert response.status_code == 504 and response.json()["code"] == "upstream_timeout"

    def test_an_api_missing_from_the_bindings_is_refused_at_build(self) -> None:
        with pytest.raises(ValueError, match=r"experience\.nowhere"):
            upstream_routers([UpstreamRoute(api="experience.nowhere", prefix="/x/v1", url="http://127.0.0.1:1")],
                             UpstreamPool(), load_bindings().apis)
