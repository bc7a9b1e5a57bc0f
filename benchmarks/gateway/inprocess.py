"""CPU per request of the governed path (or the bare handler) called as ASGI in this process, without sockets.

What the gateway's own code costs per request, apart from uvicorn and the network: the app is started
through its lifespan, a token is fetched, and `--requests` POSTs of the benchmark body are sent
`--concurrency` at a time (as wrk's 50 connections overlap), after a warm-up. Redis counts the limits
(`REDIS_URL`, default the local server) as in `make bench-gateway`; the heap is frozen after start-up as
the server's workers do. CPU is this process's (`time.process_time`), so Redis's own work is not in it.

    .venv/bin/python -m benchmarks.gateway.inprocess --target governed --requests 8000
    .venv/bin/python -m benchmarks.gateway.inprocess --target bare --requests 8000

Compare two source trees by alternating runs of each (the machine is shared: take medians).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.gateway.bare import BODY, CLIENT_ID, CLIENT_SECRET, bare_app
from benchmarks.gateway.run import governed_env

Message = dict[str, Any]
PATH = "/bench/v1/orders"


async def _lifespan(app: Any) -> None:
    """Run the app's start-up and leave its lifespan task waiting (the process exits at the end)."""
    queue: asyncio.Queue[Message] = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    started = asyncio.Event()

    async def receive() -> Message:
        return await queue.get()

    async def send(message: Message) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send))
    await started.wait()
    if task.done():
        task.result()


async def _call(app: Any, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    status, chunks = 0, []

    async def receive() -> Message:
        if pending:
            return pending.pop()
        await asyncio.Event().wait()  # the client never leaves mid-request
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
             "state": {}}
    await app(scope, receive, send)
    return status, b"".join(chunks)


async def measure(target: str, requests: int, concurrency: int) -> float:
    """CPU milliseconds per request."""
    if target == "governed":
        from benchmarks.gateway.governed import governed_app
        app: Any = governed_app()
    else:
        app = bare_app
    await _lifespan(app)
    headers = [(b"content-type", b"application/json"), (b"host", b"127.0.0.1")]
    if target == "governed":
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode())
        status, body = await _call(app, "/oauth2/token", b"grant_type=client_credentials", [
            (b"content-type", b"application/x-www-form-urlencoded"), (b"authorization", b"Basic " + basic)])
        assert status == 200, body
        headers.append((b"authorization", f"Bearer {json.loads(body)['access_token']}".encode()))
    for _ in range(300):
        status, body = await _call(app, PATH, BODY, headers)
        assert status == 200, body
    start = time.process_time()
    for _ in range(requests // concurrency):
        await asyncio.gather(*(_call(app, PATH, BODY, headers) for _ in range(concurrency)))
    return (time.process_time() - start) / (requests // concurrency * concurrency) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", choices=("governed", "bare"), default="governed")
    parser.add_argument("--requests", type=int, default=8000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="psconnect-inprocess-"))
    governed, _ = governed_env(home, os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), f"inproc{os.getpid()}")
    os.environ.update(governed)
    cpu = asyncio.run(measure(args.target, args.requests, args.concurrency))
    print(f"{args.target}: {cpu:.3f} ms CPU per request ({args.requests} requests, {args.concurrency} at a time)")


if __name__ == "__main__":
    main()
