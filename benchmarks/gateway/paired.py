"""Paired A/B of the governed path: the same benchmark server from two source trees, measured in turn.

A change to the governed path is judged against the code before it on the same machine in the same minutes:
each tree's governed server (benchmarks/gateway/governed.py) runs under uvicorn on its own port, with its own
home, database and Redis prefix, and `wrk -t1 -c50` measures them in interleaved rounds. Medians of req/s and of
the server's CPU per request are printed. A tree is a checkout (`git worktree add /tmp/before <rev>`).

    .venv/bin/python -m benchmarks.gateway.paired /tmp/before .
    .venv/bin/python -m benchmarks.gateway.paired /tmp/before . \\
        --database-url 'postgresql://postgres@127.0.0.1:5432/paired{i}'   # one database per tree, created first
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from benchmarks.gateway.bare import BODY, CLIENT_ID, CLIENT_SECRET
from benchmarks.gateway.run import PATH, Target, governed_env, wait_http, wrk

FIRST_PORT = 18300


def _serve(tree: Path, i: int, tmp: Path, redis: str, database_url: str | None) -> tuple[subprocess.Popen[bytes], str]:
    """Start tree `i`'s governed server; its process and a token for it."""
    port = FIRST_PORT + i
    home = tmp / f"tree{i}"
    home.mkdir()
    governed, _ = governed_env(home, redis, f"paired{os.getpid()}_{i}")
    env = {**os.environ, **governed, "PSCONNECT_PORT": str(port), "PYTHONPATH": str(tree)}
    if database_url:
        env["DATABASE_URL"] = database_url.format(i=i)
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "--no-access-log", "--log-level", "warning",
                               "--host", "127.0.0.1", "--port", str(port), "--factory",
                               "benchmarks.gateway.governed:governed_app"], env=env, cwd=tree,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/health")
    token = httpx.post(f"{base}/oauth2/token", data={"grant_type": "client_credentials"},
                       auth=(CLIENT_ID, CLIENT_SECRET)).json()["access_token"]
    httpx.post(f"{base}{PATH}", content=BODY, headers={"Authorization": f"Bearer {token}",
                                                       "Content-Type": "application/json"}).raise_for_status()
    return server, str(token)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("trees", nargs=2, type=Path, help="the source tree before and after the change")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--database-url", help="a database per tree, `{i}` standing for 0 and 1 (default: SQLite)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="psconnect-paired-"))
    servers: list[subprocess.Popen[bytes]] = []
    targets: list[tuple[Target, str]] = []
    try:
        for i, tree in enumerate(args.trees):
            server, token = _serve(tree.resolve(), i, tmp, args.redis, args.database_url)
            servers.append(server)
            targets.append((Target(str(i), str(tree), f"http://127.0.0.1:{FIRST_PORT + i}{PATH}", [server.pid],
                                   auth=True), token))
        for target, token in targets:  # warm-up: pools, caches, the token cache
            wrk(target, 2, args.concurrency, token, tmp)
        for _ in range(args.rounds):
            for target, token in targets:
                target.samples.append(wrk(target, args.seconds, args.concurrency, token, tmp))
                print(f"{target.label}: {target.samples[-1]}", flush=True)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(10)
    for target, _ in targets:
        print(f"median {target.label}: {target.median('rps'):,.0f} req/s, {target.median('cpu_ms_per_req'):.3f} CPU "
              f"ms/req, p99 {target.median('p99_ms'):.1f} ms, errors {sum(s.errors for s in target.samples)}")
    print("load average", os.getloadavg())


if __name__ == "__main__":
    main()
