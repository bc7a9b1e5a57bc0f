"""Gateway benchmark: bare handler vs governed path vs nginx vs remote upstream, one session.

    make bench-gateway            # or: .venv/bin/python -m benchmarks.gateway.run --runs 3 --seconds 8

Starts (a) the bare handler, (b) the full gateway in front of the same handler, (c) nginx
proxying to (a) and (d) the gateway's remote-upstream route to (a), each one worker, and
drives them with `hey`, interleaved, several rounds; reports medians of req/s, p50/p99
and CPU per request (server processes' utime+stime from /proc over responses), the ratios
against the targets, and p99 at a fixed offered load of half of (a)'s peak. Also measures
the proxy hop's candidate clients (httpx vs aiohttp, 50 concurrent). Writes RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import yaml

from benchmarks.gateway.bare import BODY, CLIENT_ID, CLIENT_SECRET

__all__ = ["main"]

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
PY = sys.executable
BARE, GATEWAY, NGINX = 18081, 18082, 18083
PATH = "/bench/v1/orders"
CLK = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_req: float
    responses: int
    non_2xx: int


@dataclass
class Target:
    key: str
    label: str
    url: str
    pids: list[int]
    auth: bool = False
    samples: list[Sample] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return float(statistics.median(float(getattr(s, attr)) for s in self.samples))


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def hey(target: Target, seconds: float, concurrency: int, token: str, body: Path, rate: float | None = None) -> Sample:
    cmd = ["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-T", "application/json", "-D",
           str(body)]
    if target.auth:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    if rate is not None:
        cmd += ["-q", f"{rate / concurrency:.2f}"]
    before = cpu_ticks(target.pids)
    out = subprocess.run([*cmd, target.url], capture_output=True, text=True, check=True).stdout
    used = cpu_ticks(target.pids) - before
    rps, p50, p99 = (_number(out, pattern) for pattern in (
        r"Requests/sec:\s+([\d.]+)", r"50% in ([\d.]+) secs", r"99% in ([\d.]+) secs"))
    if rps == 0 or "Error distribution" in out:
        print(f"hey against {target.url} reported errors:\n{out[-1500:]}", file=sys.stderr)
    statuses = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    responses = sum(statuses.values())
    non_2xx = sum(n for c, n in statuses.items() if not 200 <= c < 300)
    return Sample(rps, p50 * 1000, p99 * 1000, used / CLK * 1000 / max(responses, 1), responses, non_2xx)


def _number(text: str, pattern: str) -> float:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def wait_http(url: str, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def nginx_conf(tmp: Path) -> Path:
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  upstream bare {{ server 127.0.0.1:{BARE}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{NGINX};
    location / {{ proxy_pass http://bare; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
""")
    return conf


def bench_bindings(tmp: Path) -> tuple[Path | None, bool]:
    """A copy of the bindings whose default plan admits the benchmark's load (rate limits still counted)."""
    data = yaml.safe_load((ROOT / "policies" / "gateway.yaml").read_text())
    if "plans" not in data:
        return None, False
    data["plans"]["bench"] = {"description": "Benchmark: limits far above the offered load, still counted.",
                              "limits": {"per_second": 10_000_000, "per_minute": 100_000_000}}
    data["default_plan"] = "bench"
    path = tmp / "bench-bindings.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, True


async def client_choice(url: str, concurrency: int, total: int) -> dict[str, float]:
    """Req/s of the proxy hop's candidate clients: `concurrency` tasks sharing one pooled client."""
    results: dict[str, float] = {}
    headers = {"content-type": "application/json"}

    async def drive(call: object) -> float:
        per = total // concurrency

        async def worker() -> None:
            for _ in range(per):
                await call()  # type: ignore[operator]

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return per * concurrency / (time.perf_counter() - start)

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as hx:
        async def hx_call() -> None:
            (await hx.post(url, content=BODY, headers=headers)).raise_for_status()
        results["httpx"] = await drive(hx_call)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as ah:
        async def ah_call() -> None:
            async with ah.post(url, data=BODY, headers=headers) as r:
                r.raise_for_status()
                await r.read()
        results["aiohttp"] = await drive(ah_call)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    for tool in ("hey", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} is missing: apt-get install -y hey nginx")

    tmp = Path(tempfile.mkdtemp(prefix="psconnect-bench-"))
    body = tmp / "body.json"
    body.write_bytes(BODY)
    bindings, limited = bench_bindings(tmp)
    env = {**os.environ, "PSCONNECT_HOME": str(tmp / "home"), "PSCONNECT_PORT": str(GATEWAY),
           "PSCONNECT_TOKEN_TTL": "3600", "PSCONNECT_SEED_DEMO": "0", "REDIS_URL": args.redis,
           "PSCONNECT_REDIS_PREFIX": f"bench{os.getpid()}", "BENCH_UPSTREAM_URL": f"http://127.0.0.1:{BARE}/bench/v1",
           "PYTHONPATH": str(ROOT)}
    if bindings is not None:
        env["PSCONNECT_BINDINGS"] = str(bindings)
    uvicorn = [PY, "-m", "uvicorn", "--no-access-log", "--log-level", "warning", "--host", "127.0.0.1"]
    procs = [
        subprocess.Popen([*uvicorn, "--port", str(BARE), "benchmarks.gateway.bare:bare_app"], env=env, cwd=ROOT),
        subprocess.Popen([*uvicorn, "--port", str(GATEWAY), "--factory", "benchmarks.gateway.governed:governed_app"],
                         env=env, cwd=ROOT, stderr=subprocess.DEVNULL),
        subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(nginx_conf(tmp))]),
    ]
    try:
        wait_http(f"http://127.0.0.1:{BARE}/")
        wait_http(f"http://127.0.0.1:{GATEWAY}/health")
        wait_http(f"http://127.0.0.1:{NGINX}/")
        token = httpx.post(f"http://127.0.0.1:{GATEWAY}/oauth2/token", data={"grant_type": "client_credentials"},
                           auth=(CLIENT_ID, CLIENT_SECRET)).json()["access_token"]
        probe = httpx.post(f"http://127.0.0.1:{GATEWAY}{PATH}", content=BODY,
                           headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        probe.raise_for_status()
        rate_limited = "ratelimit-policy" in probe.headers
        bare_pid, gw_pid, nginx_pid = (p.pid for p in procs)
        targets = [
            Target("a", "bare handler", f"http://127.0.0.1:{BARE}{PATH}", [bare_pid]),
            Target("b", "governed (gateway)", f"http://127.0.0.1:{GATEWAY}{PATH}", [gw_pid], auth=True),
            Target("c", "nginx -> bare", f"http://127.0.0.1:{NGINX}{PATH}", [nginx_pid, *children(nginx_pid),
                                                                              bare_pid]),
            Target("d", "gateway remote upstream -> bare", f"http://127.0.0.1:{GATEWAY}/bench-remote/v1/orders",
                   [gw_pid, bare_pid], auth=True),
        ]
        for t in targets:  # warm-up: JIT-free, but pools, caches and keys
            hey(t, 2, args.concurrency, token, body)
        for _ in range(args.runs):
            for t in targets:
                t.samples.append(hey(t, args.seconds, args.concurrency, token, body))
                print(f"{t.key} {t.label:34} {t.samples[-1]}", flush=True)
        half = targets[0].median("rps") / 2
        fixed = {t.key: [] for t in targets[:2]}  # type: dict[str, list[Sample]]
        for _ in range(args.runs):
            for t in targets[:2]:
                fixed[t.key].append(hey(t, args.seconds, 10, token, body, rate=half))
                print(f"fixed {half:.0f}/s {t.key} {fixed[t.key][-1]}", flush=True)
        clients = [asyncio.run(client_choice(f"http://127.0.0.1:{BARE}{PATH}", 50, 3000)) for _ in range(args.runs)]
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM if p is not procs[2] else signal.SIGQUIT)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    write_results(args, targets, fixed, half, clients, rate_limited, limited)


def write_results(args: argparse.Namespace, targets: list[Target], fixed: dict[str, list[Sample]], half: float,
                  clients: list[dict[str, float]], rate_limited: bool, limited: bool) -> None:
    a, b, c, d = targets
    ratio_ba = b.median("rps") / a.median("rps")
    ratio_dc = d.median("rps") / c.median("rps")
    p99_fixed = {k: statistics.median(s.p99_ms for s in v) for k, v in fixed.items()}
    p50_fixed = {k: statistics.median(s.p50_ms for s in v) for k, v in fixed.items()}
    added = p99_fixed["b"] - p99_fixed["a"]
    hx = statistics.median(r["httpx"] for r in clients)
    ah = statistics.median(r["aiohttp"] for r in clients)
    rows = "\n".join(
        f"| ({t.key}) {t.label} | {t.median('rps'):,.0f} | {t.median('p50_ms'):.2f} | {t.median('p99_ms'):.2f} | "
        f"{t.median('cpu_ms_per_req'):.3f} | {sum(s.non_2xx for s in t.samples)} |" for t in targets)

    def met(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    load = os.getloadavg()
    text = f"""# Gateway benchmark results

Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores ({platform.processor() or
platform.machine()}), Python {platform.python_version()}; one worker per server (uvicorn, nginx
`worker_processes 1`), load generator `hey` on the same machine, {args.concurrency} concurrent connections,
{args.seconds:g} s per run, medians of {args.runs} interleaved runs in one session.
Load average when the run ended: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) — the machine is
shared; figures taken under other load are lower and noisier than on an idle machine.

Command:

    make bench-gateway
    # = .venv/bin/python -m benchmarks.gateway.run --runs {args.runs} --seconds {args.seconds:g}

Endpoint: `POST /bench/v1/orders` with a 30-byte JSON body decoded by msgspec into a Struct and echoed.
(b) runs the full gateway chain: JWT (ES256) verification, scope check,
{"Redis rate limit and quota counters (part A's policies, Redis at " + args.redis + ")" if rate_limited else
 "NO rate limit (part A's rate-limit policy was not active in this build)"}, request validation
(size, content type, UTF-8, depth), idempotency (not required on this route), versioning headers, correlation
ids and the JSON access log. (d) is the same chain plus the aiohttp proxy hop to (a).
{"" if limited else "The bindings declared no plans, so no rate limit ran."}

## Peak throughput ({args.concurrency} concurrent)

| target | req/s | p50 ms | p99 ms | CPU ms/req (server side) | non-2xx |
|---|---:|---:|---:|---:|---:|
{rows}

CPU per request counts every server process on the path: (c) nginx + (a), (d) gateway + (a).

## Targets

| target | measured | goal | |
|---|---:|---:|---|
| (b)/(a) throughput | {ratio_ba:.2f} | ≥ 0.80 | {met(ratio_ba >= 0.8)} |
| p99 added by the governed path at {half:,.0f} req/s (half of (a)'s peak) | {added:.2f} ms \
(a {p99_fixed['a']:.2f} → b {p99_fixed['b']:.2f}; p50 {p50_fixed['a']:.2f} → {p50_fixed['b']:.2f}) | ≤ 1 ms | \
{met(added <= 1.0)} |
| (d)/(c) throughput | {ratio_dc:.2f} | ≥ 0.60 | {met(ratio_dc >= 0.6)} |

Less sensitive to other load on the machine: CPU per request. A CPU-bound single worker's throughput ratio tends
to the inverse CPU ratio: (a)/(b) CPU = {a.median('cpu_ms_per_req') / b.median('cpu_ms_per_req'):.2f},
(c)/(d) CPU = {c.median('cpu_ms_per_req') / d.median('cpu_ms_per_req'):.2f}.

## Proxy-hop client choice (50 concurrent POSTs to (a), one pooled client)

| client | req/s (median) |
|---|---:|
| httpx {httpx.__version__} | {hx:,.0f} |
| aiohttp {aiohttp.__version__} | {ah:,.0f} |

gateway/upstream.py uses {"aiohttp" if ah >= hx else "httpx (re-check: aiohttp lost here)"}.
"""
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
