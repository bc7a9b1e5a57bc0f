"""How a worker reaches the gateways: one base URL after another, moving on from a gateway that refuses.

With the roles apart a worker's process steps call the system APIs through the gateway over
HTTP, as an external caller would. Behind a load balancer `PSCONNECT_GATEWAY_URL` names it
and this is a plain client. Naming the gateways themselves works too: a request goes to the
gateway that answered last, and only a refused connection (`httpx.ConnectError`: nothing
was sent, so even a POST is safe to send elsewhere) moves it to the next. A connection cut
after the request was sent is the step's to retry, under its own idempotency key.
"""

from __future__ import annotations

import httpx

from foundation.http_client import CycleFreeClient

__all__ = ["FailoverTransport", "gateway_client"]


class FailoverTransport(httpx.AsyncBaseTransport):
    def __init__(self, base_urls: tuple[str, ...]) -> None:
        if not base_urls:
            raise ValueError("no gateway URL to reach")
        self._bases = [httpx.URL(u) for u in base_urls]
        self._current = 0
        self._transport = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for tried in range(len(self._bases)):
            index = (self._current + tried) % len(self._bases)
            base = self._bases[index]
            request.url = request.url.copy_with(scheme=base.scheme, host=base.host, port=base.port)
            request.headers["host"] = request.url.netloc.decode("ascii")
            try:
                response = await self._transport.handle_async_request(request)
            except httpx.ConnectError:
                if tried == len(self._bases) - 1:
                    raise
                continue
            self._current = index
            return response
        raise AssertionError("unreachable")  # the loop returns or raises

    async def aclose(self) -> None:
        await self._transport.aclose()


def gateway_client(base_urls: tuple[str, ...], timeout: float) -> httpx.AsyncClient:
    """The client a worker's process steps use; its requests' paths are the gateway's own."""
    return CycleFreeClient(transport=FailoverTransport(base_urls), base_url=base_urls[0],
                           timeout=httpx.Timeout(timeout))
