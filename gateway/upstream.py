"""Remote upstream routes: the gateway fronts an API served by another process or host.

A route prefix (`/experience/portal/v1`) is proxied to an upstream base URL with the
API's whole policy chain in front — authentication, scopes, rate limits, validation,
idempotency — because the proxy handler lives on a governed router like any other.

The hop uses one pooled aiohttp session: measured against httpx for this hop (see
benchmarks/gateway/RESULTS.md and STACK-NOTES), httpx's pool collapses under ~50
concurrent requests while aiohttp holds. Bodies stream both ways; hop-by-hop headers
are stripped (RFC 9110 §7.6.1); correlation headers and X-Forwarded-* are passed on;
an upstream that cannot be reached is a 502 problem, one that does not answer in time
a 504. Bodies whose length is declared and at most `BUFFERED_BYTES` go in one piece
instead: streaming costs a relay task and chunked framing per request, which was a
fifth of the proxy hop's CPU for the small JSON bodies most APIs exchange.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Annotated, Any

import aiohttp
import msgspec
from litestar import Request, Router, route
from litestar.enums import HttpMethod
from litestar.response import Response, Stream
from msgspec import Meta

from contracts.correlation import outgoing_headers
from contracts.problems import ProblemError

__all__ = ["UpstreamPool", "UpstreamRoute", "upstream_routers"]

log = logging.getLogger("psconnect.upstream")

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "trailers", "transfer-encoding", "upgrade", "proxy-connection"})
_NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "x-correlation-id", "traceparent"}
_NOT_RETURNED = HOP_BY_HOP | {"content-length", "date", "server"}
BUFFERED_BYTES = 256 * 1024
_METHODS = [HttpMethod.GET, HttpMethod.POST, HttpMethod.PUT, HttpMethod.PATCH, HttpMethod.DELETE, HttpMethod.HEAD]


class UpstreamRoute(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One proxied API (PSCONNECT_UPSTREAMS is a JSON list of these)."""

    api: Annotated[str, Meta(pattern=r"^[a-z_]+\.[a-z_]+$", description="API name in the bindings (its policies).")]
    prefix: Annotated[str, Meta(pattern=r"^(/[A-Za-z0-9_.\-]+)+$", description="Gateway path prefix, e.g. /x/y/v1.")]
    url: Annotated[str, Meta(pattern=r"^https?://", description="Upstream base URL the prefix maps to.")]
    timeout: Annotated[float, Meta(gt=0, le=300, description="Seconds to wait for the upstream's answer.")] = 30.0
    connect_timeout: Annotated[float, Meta(gt=0, le=60)] = 3.0


class UpstreamPool:
    """The pooled client of every upstream route, opened on first use in the serving loop."""

    def __init__(self, max_connections: int = 256) -> None:
        self._max = max_connections
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max, limit_per_host=self._max, keepalive_timeout=30,
                                             enable_cleanup_closed=True)
            # auto_decompress off: the body passes through as the upstream encoded it, with its Content-Encoding.
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False, cookie_jar=
                                                  aiohttp.DummyCookieJar())
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _request_headers(request: Request[Any, Any, Any]) -> list[tuple[str, str]]:
    connection_listed = {h.strip().lower() for h in request.headers.get("connection", "").split(",")}
    headers = [(k, v) for k, v in request.headers.items()
               if k.lower() not in _NOT_FORWARDED and k.lower() not in connection_listed]
    client = request.scope.get("client")
    if client:
        prior = request.headers.get("x-forwarded-for")
        headers = [(k, v) for k, v in headers if k.lower() != "x-forwarded-for"]
        headers.append(("X-Forwarded-For", f"{prior}, {client[0]}" if prior else client[0]))
    headers += [("X-Forwarded-Proto", request.url.scheme), ("X-Forwarded-Host", request.headers.get("host", ""))]
    headers += list(outgoing_headers().items())
    length = request.headers.get("content-length")
    if length is not None:
        headers.append(("Content-Length", length))
    return headers


def _proxy_handler(spec: UpstreamRoute, pool: UpstreamPool) -> Any:
    base = spec.url.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=spec.connect_timeout, sock_read=spec.timeout)
    operation_id = f"{spec.api}.proxy"

    @route(["/", "/{tail:path}"], http_method=_METHODS, operation_id=operation_id, include_in_schema=False)
    async def proxy(request: Request[Any, Any, Any]) -> Response[bytes] | Stream:
        tail = request.scope["path"][len(spec.prefix):] or "/"
        query = request.scope["query_string"]
        url = base + tail + ("?" + query.decode("latin-1") if query else "")
        data: bytes | AsyncIterator[bytes] | None = None
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            data = await request.body() if _declared_small(request.headers.get("content-length")) else request.stream()
        try:
            upstream = await pool.session().request(
                request.method, url, headers=_request_headers(request), allow_redirects=False, timeout=timeout,
                data=data)
        except TimeoutError as exc:  # aiohttp's ServerTimeoutError is one too
            raise ProblemError(504, "upstream-timeout", "Upstream timeout",
                               f"The upstream of {spec.api} did not answer in time.", code="upstream_timeout") from exc
        except aiohttp.ClientError as exc:
            log.warning("upstream %s unreachable: %s", spec.api, exc)
            raise ProblemError(502, "bad-gateway", "Upstream unreachable",
                               f"The upstream of {spec.api} could not be reached.",
                               code="upstream_unreachable") from exc
        connection_listed = {h.strip().lower() for h in upstream.headers.get("connection", "").split(",")}
        headers = [(k, v) for k, v in upstream.headers.items()
                   if k.lower() not in _NOT_RETURNED and k.lower() not in connection_listed]
        if _declared_small(upstream.headers.get("content-length")):
            try:
                content = await upstream.read()
            except aiohttp.ClientError as exc:
                raise ProblemError(502, "bad-gateway", "Upstream failed", f"The upstream of {spec.api} broke off "
                                   "its answer.", code="upstream_unreachable") from exc
            finally:
                upstream.release()
            return Response(content, status_code=upstream.status, headers=_single(headers),
                            media_type=upstream.headers.get("content-type"))
        return Stream(_relay(upstream), status_code=upstream.status, headers=_single(headers),
                      media_type=upstream.headers.get("content-type"))

    return proxy


def _declared_small(length: str | None) -> bool:
    return length is not None and length.isdigit() and int(length) <= BUFFERED_BYTES


async def _relay(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
    finally:
        upstream.release()


def _single(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Litestar takes a mapping: repeated headers are joined, as RFC 9110 §5.3 allows (not Set-Cookie)."""
    merged: dict[str, str] = {}
    for k, v in headers:
        if k.lower() == "content-type":
            continue
        merged[k] = f"{merged[k]}, {v}" if k in merged else v
    return merged


def upstream_routers(routes: Sequence[UpstreamRoute], pool: UpstreamPool, known_apis: Collection[str]) -> list[Router]:
    """One governed router per upstream route (its `api` opt puts the API's policy chain in front).

    Raises:
        ValueError: a route names an API the bindings do not declare (it would have no policies).
    """
    unknown = sorted({spec.api for spec in routes} - set(known_apis))
    if unknown:
        raise ValueError(f"PSCONNECT_UPSTREAMS: API(s) {', '.join(unknown)} not declared in the bindings")
    return [Router(path=spec.prefix, opt={"api": spec.api}, route_handlers=[_proxy_handler(spec, pool)])
            for spec in routes]
