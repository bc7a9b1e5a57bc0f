"""How the CLI talks to psconnect: as a client application, over HTTP, through the gateway.

`psconnect demo`, `billing …` and `workers sync` all get a token with client
credentials and call the governed APIs. When no gateway answers at the URL, `demo`
starts an embedded one in-process (with the demo client's credentials), so it works
on a fresh machine; `billing` and `workers` do not — a fresh embedded stack has an
empty ledger, so its answers (every project discrepant) would describe nothing real —
they say that nothing answers there and how to start it.

A problem answer from the gateway ends the command with one line (status, title,
detail, field errors, code) instead of a traceback: exit 2 when the request itself was
refused as invalid (400/422), 1 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx

__all__ = ["TERMINAL", "ApiClient", "ProblemAnswer", "say", "warn", "with_gateway"]

TERMINAL = {"succeeded", "needs_attention", "failed"}


def say(text: str = "") -> None:
    print(text, flush=True)


def warn(text: str) -> None:
    """One line on stderr: why the command stopped."""
    print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _embedded_gateway() -> Iterator[tuple[str, tuple[str, str]]]:
    """Start the embedded stack on a free port in a background thread."""
    import uvicorn

    from cli.demo_client import ensure_demo_client
    from gateway.app import create_gateway
    from gateway.settings import load_settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gateway = create_gateway(load_settings(port=port))
    logging.getLogger("psconnect.access").setLevel(logging.WARNING)  # the command's own output is the story
    server = uvicorn.Server(uvicorn.Config(gateway.app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the embedded gateway did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", ensure_demo_client(gateway.oauth, gateway.settings.home)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


async def _reachable(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            return (await client.get(url + "/health")).status_code == 200
    except httpx.HTTPError:
        return False


class ProblemAnswer(Exception):
    """The gateway refused a call; `str()` is the one line the command prints."""

    def __init__(self, method: str, path: str, response: httpx.Response) -> None:
        self.status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            parts = [str(body.get(k)) for k in ("title", "detail") if body.get(k)]
            fields = [f"{e.get('pointer')}: {e.get('detail')}" for e in body.get("errors") or []
                      if isinstance(e, dict)]
            text = ": ".join(parts) + (f" ({'; '.join(fields)})" if fields else "") + \
                (f" [{body['code']}]" if body.get("code") else "")
        else:
            text = response.text
        super().__init__(" ".join(f"{method} {path} -> {self.status}: {text}".split()))

    @property
    def exit_code(self) -> int:
        return 2 if self.status in (400, 422) else 1


RETRY_ATTEMPTS = 5
RETRY_AFTER_MAX = 30.0
"""Seconds: a longer Retry-After is not waited out by a command someone watches."""


def _retry_after(response: httpx.Response) -> float:
    try:
        seconds = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.1), RETRY_AFTER_MAX)


class ApiClient:
    def __init__(self, client: httpx.AsyncClient, token: dict[str, Any]) -> None:
        self.client = client
        self.token = token
        self.headers = {"Authorization": f"Bearer {token['access_token']}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; a 429 or 503 (a rate limit, a vendor pacing us or cooling down) is waited out as its
        `Retry-After` says and tried again, when the call is safe to repeat: a read, or a write with an
        Idempotency-Key."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        repeatable = method in ("GET", "HEAD") or "Idempotency-Key" in headers
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            response = await self.client.request(method, path, headers=headers, **kwargs)
            if response.status_code not in (429, 503) or not repeatable or attempt == RETRY_ATTEMPTS:
                break
            await asyncio.sleep(_retry_after(response))
        if response.status_code >= 400:
            raise ProblemAnswer(method, path, response)
        return response.json()

    async def items(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a paged list, following `next_cursor` (pages of 200)."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await self.call("GET", path, params={**(params or {}), "limit": 200,
                                                        **({"cursor": cursor} if cursor else {})})
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return items

    async def wait(self, run: dict[str, Any], path: str, *, show: Callable[[dict[str, Any]], str] | None = None,
                   every: float = 0.25) -> dict[str, Any]:
        """Poll a run resource at `path`, printing each step when its state or progress changes."""
        shown: dict[str, str] = {}
        while True:
            for step in run["steps"]:
                line = show(step) if show else _step_line(step)
                if step["state"] != "pending" and shown.get(step["name"]) != line:
                    shown[step["name"]] = line
                    say(line)
            if run["status"] in TERMINAL:
                return run
            await asyncio.sleep(every)
            run = await self.call("GET", path)


def _step_line(step: dict[str, Any]) -> str:
    extra = f" {step['duration_ms']:.0f} ms" if step.get("duration_ms") is not None else ""
    ids = ", ".join(f"{k}={v}" for k, v in step["vendor_ids"].items())
    return f"    {step['name']:<15} {step['state']:<10}{extra:>9}  {ids or step.get('detail') or ''}"


Body = Callable[[ApiClient, str], Awaitable[int]]


async def with_gateway(base_url: str, client_id: str | None, client_secret: str | None, body: Body, *,
                       embedded: bool = False) -> int:
    """Run `body` against the gateway at `base_url`; when none answers, an embedded one if `embedded`, else exit 1."""
    try:
        return await _with_gateway(base_url, client_id, client_secret, body, embedded)
    except ProblemAnswer as exc:
        warn(str(exc))
        return exc.exit_code
    except httpx.HTTPError as exc:  # the gateway went away mid-command
        warn(f"lost the gateway at {base_url}: {type(exc).__name__}: {exc}")
        return 1


async def _with_gateway(base_url: str, client_id: str | None, client_secret: str | None, body: Body,
                        embedded: bool) -> int:
    from cli.demo_client import read_demo_credentials
    from gateway.settings import load_settings

    if not await _reachable(base_url):
        if not embedded:
            warn(f"nothing answers at {base_url}: start psconnect first (`make run` or `psconnect serve`), "
                "or pass --base-url")
            return 1
    else:
        creds = (client_id, client_secret) if client_id and client_secret else \
            read_demo_credentials(load_settings().home)
        if creds is None or not creds[0] or not creds[1]:
            say("no credentials: pass --client-id and --client-secret (make run prints the demo client's)")
            return 2
        return await _session(base_url, (str(creds[0]), str(creds[1])), body)
    say(f"no gateway at {base_url}; starting the embedded stack for this command…")
    with _embedded_gateway() as (url, creds):
        return await _session(url, (client_id or creds[0], client_secret or creds[1]), body)


async def _session(base_url: str, creds: tuple[str, str], body: Body) -> int:
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as client:
        response = await client.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=creds)
        if response.status_code != 200:
            say(f"token request failed: {response.status_code} {response.text}")
            return 1
        return await body(ApiClient(client, response.json()), base_url)
