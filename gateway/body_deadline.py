"""A request body must arrive within a bound, or the connection is answered 408 and closed.

uvicorn bounds the idle time between requests (`timeout_keep_alive`) but not the time a
client takes to send the body it announced: a client that sent headers and half a body
held its connection, and the handler reading it, for as long as it liked (300 such
connections stayed open in an outside test). `BodyDeadline` wraps the whole app, so it
covers every route, governed or not, and the requests refused before their body was read:

- every `receive` of a request body waits at most until `seconds` after the request
  started; past that the app sees a disconnect, and the client gets a 408 problem with
  `Connection: close` (uvicorn then closes the connection);
- any response that starts while the request body is still incomplete (a 401 sent before
  the body was read) carries `Connection: close`, so the unread rest of the body can no
  longer hold the connection open.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPDisconnectEvent, Message, Receive, ReceiveMessage, Scope, Send

from contracts.problems import MEDIA_TYPE, Problem, problem_type

__all__ = ["DEFAULT_BODY_SECONDS", "BodyDeadline"]

DEFAULT_BODY_SECONDS: Final = 10.0


class BodyDeadline:
    def __init__(self, app: ASGIApp, seconds: float = DEFAULT_BODY_SECONDS) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        deadline = time.monotonic() + self.seconds
        body_done = not _announces_body(scope)
        timed_out = started = False

        async def bounded_receive() -> ReceiveMessage:
            nonlocal body_done, timed_out
            if body_done or timed_out:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(deadline - time.monotonic(), 0.0))
            except TimeoutError:
                timed_out = True
                return HTTPDisconnectEvent(type="http.disconnect")
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def closing_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return  # the app's answer to the disconnect it was shown; the client gets the 408 below
            if message["type"] == "http.response.start":
                started = True
                if not body_done:
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, bounded_receive, closing_send)
        if timed_out and not started:
            await _request_timeout(scope, send, self.seconds)


def _announces_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
        if name == b"transfer-encoding":
            return True
    return False


async def _request_timeout(scope: Scope, send: Send, seconds: float) -> None:
    problem = Problem(type=problem_type("request-timeout"), title="Request timeout", status=408,
                      detail=f"The request body did not arrive within {seconds:g} s.", instance=scope.get("path"),
                      code="body_timeout")
    body = msgspec.json.encode(problem)
    await send({"type": "http.response.start", "status": 408,
                "headers": [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body, "more_body": False})
