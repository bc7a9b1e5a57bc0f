"""An httpx client whose answered responses are freed as soon as the caller drops them.

httpx 0.28 wraps every response's body in a stream that points back at the response, to stamp
`response.elapsed` when it closes (encode/httpx#3733). Every response is then a reference cycle:
reference counting never frees it, only the cyclic collector does, together with its body and
its request. A month-end run makes tens of thousands of calls with bodies of up to a megabyte,
and all of them waited for the collector: that is why collecting less often (`gateway.app.settle_heap`)
first cost 190 MB of peak memory at 3,000 workers (issue 15), and costs nothing now.

Once a response is read (every call that does not ask for a stream), its body is in
`response.content` and the stream has nothing left to give: it is replaced by one holding the same
bytes, which refers to nothing, so the cycle is gone and the response dies with its last reference.
A streamed response keeps httpx's stream until its reader closes it, as before.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["CycleFreeClient"]


class CycleFreeClient(httpx.AsyncClient):
    """`httpx.AsyncClient`, with read responses released by reference counting (see the module)."""

    async def send(self, request: httpx.Request, *, stream: bool = False, **options: Any) -> httpx.Response:
        response = await super().send(request, stream=stream, **options)
        if not stream:
            response.stream = httpx.ByteStream(response.content)
        return response
