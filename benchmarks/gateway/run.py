"""Gateway benchmark: bare handler vs governed path vs nginx vs remote upstream, one session.

    make bench-gateway            # or: .venv/bin/python -m benchmarks.gateway.run --runs 5 --seconds 6

Starts (f) nginx answering `return 200` (the floor), (a) the bare handler, (b) the full
gateway in front of the same handler, (c) nginx proxying to (a), (d) the gateway's
remote-upstream route to (a) and (e) the Python peer (peer.py), each one worker, and drives
them with `wrk -t1`, interleaved, several rounds; reports medians of req/s, p50/p99 and CPU
per request (server processes' utime+stime from /proc over responses), the ratios against
the targets, p99 at a fixed offered load of half of (a)'s peak (a Lua schedule in wrk) and
the load average. Writes RESULTS.md.
"""

from __future__ import annotations

import argparse
import base64
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

import httpx
import msgspec
import yaml

from benchmarks.gateway.bare import BODY, CLIENT_ID, CLIENT_SECRET

__all__ = ["main"]

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
PY = sys.executable
BARE, GATEWAY, NGINX, FLOOR, PEER = 18081, 18082, 18083, 18084, 18085
PATH = "/bench/v1/orders"
CLK = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_req: float
    responses: int
    errors: int


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


WRK_LUA = r"""
wrk.method = "POST"
wrk.body = %(body)s
wrk.headers["Content-Type"] = "application/json"
%(auth)s
local rate = %(rate)s
if rate > 0 then
  -- A fixed offered load, which wrk itself lacks (wrk2's -R): one schedule for the thread, a slot every
  -- 1/rate s handed to whichever connection asks next; a connection whose slot is late sends at once, so
  -- the offered rate holds while the server keeps up (the runner reports the achieved rate beside it).
  local ffi = require("ffi")
  ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } bench_ts; int clock_gettime(int, bench_ts *); ]]
  local ts = ffi.new("bench_ts")
  local function now_ms()
    ffi.C.clock_gettime(1, ts)
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
  local interval, next_at = 1000 / rate, nil
  function delay()
    local now = now_ms()
    if next_at == nil then next_at = now end
    next_at = next_at + interval
    local wait = next_at - now
    if wait < 1 then return 0 end
    return math.floor(wait)
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %%d %%d %%d %%d %%d %%d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def wrk(target: Target, seconds: float, concurrency: int, token: str, tmp: Path, rate: float = 0.0) -> Sample:
    """One `wrk -t1` run against the target; CPU of the target's server processes from /proc around it."""
    script = tmp / f"wrk-{target.key}-{rate:.0f}.lua"
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if target.auth else ""
    script.write_text(WRK_LUA % {"body": "[[" + BODY.decode() + "]]", "auth": auth, "rate": f"{rate:.3f}"})
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script), target.url]
    before = cpu_ticks(target.pids)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    used = cpu_ticks(target.pids) - before
    match = re.search(r"^BENCH (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk against {target.url} printed no summary:\n{out[-1500:]}")
    requests, duration_us, p50_us, p99_us, bad_status, socket_errors = (int(g) for g in match.groups())
    if bad_status or socket_errors:
        print(f"wrk against {target.url}: {bad_status} responses >= 400, {socket_errors} socket errors",
              file=sys.stderr)
    return Sample(requests / (duration_us / 1e6), p50_us / 1000, p99_us / 1000,
                  used / CLK * 1000 / max(requests, 1), requests, bad_status + socket_errors)


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
  server {{ listen 127.0.0.1:{FLOOR}; location / {{ return 200; }} }}
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


def governed_env(home: Path, redis: str, prefix: str) -> tuple[dict[str, str], bool]:
    """The settings of a benchmark gateway with its state under `home` and its counters under `prefix` in Redis,
    and whether its bindings declare plans (so rate limits are counted)."""
    bindings, limited = bench_bindings(home)
    env = {"PSCONNECT_HOME": str(home / "home"), "PSCONNECT_TOKEN_TTL": "3600", "PSCONNECT_SEED_DEMO": "0",
           "REDIS_URL": redis, "PSCONNECT_REDIS_PREFIX": prefix}
    if bindings is not None:
        env["PSCONNECT_BINDINGS"] = str(bindings)
    return env, limited


def token_claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    claims: dict[str, object] = msgspec.json.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def stop(procs: list[subprocess.Popen[bytes]], nginx: subprocess.Popen[bytes]) -> None:
    for p in procs:
        p.send_signal(signal.SIGQUIT if p is nginx else signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--no-peer", action="store_true", help="skip the Python peer (its group not installed)")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} is missing: apt-get install -y wrk nginx (make bench-gateway does)")

    tmp = Path(tempfile.mkdtemp(prefix="psconnect-bench-"))
    prefix = f"bench{os.getpid()}"
    governed, limited = governed_env(tmp, args.redis, prefix)
    env = {**os.environ, **governed, "PSCONNECT_PORT": str(GATEWAY),
           "BENCH_UPSTREAM_URL": f"http://127.0.0.1:{BARE}/bench/v1", "PYTHONPATH": str(ROOT)}
    uvicorn = [PY, "-m", "uvicorn", "--no-access-log", "--log-level", "warning", "--host", "127.0.0.1"]
    nginx = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(nginx_conf(tmp))])
    procs = [
        subprocess.Popen([*uvicorn, "--port", str(BARE), "benchmarks.gateway.bare:bare_app"], env=env, cwd=ROOT),
        subprocess.Popen([*uvicorn, "--port", str(GATEWAY), "--factory", "benchmarks.gateway.governed:governed_app"],
                         env=env, cwd=ROOT, stderr=subprocess.DEVNULL),
        nginx,
    ]
    load_before = os.getloadavg()
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
        bare_pid, gw_pid = procs[0].pid, procs[1].pid
        nginx_pids = [nginx.pid, *children(nginx.pid)]
        targets = [
            Target("f", "nginx `return 200` (the floor)", f"http://127.0.0.1:{FLOOR}{PATH}", nginx_pids),
            Target("a", "bare handler", f"http://127.0.0.1:{BARE}{PATH}", [bare_pid]),
            Target("b", "governed (gateway)", f"http://127.0.0.1:{GATEWAY}{PATH}", [gw_pid], auth=True),
            Target("c", "nginx -> bare", f"http://127.0.0.1:{NGINX}{PATH}", [*nginx_pids, bare_pid]),
            Target("d", "gateway remote upstream -> bare", f"http://127.0.0.1:{GATEWAY}/bench-remote/v1/orders",
                   [gw_pid, bare_pid], auth=True),
        ]
        if not args.no_peer:
            claims = token_claims(token)
            peer_env = {**env, "PEER_ISSUER": str(claims["iss"]), "PEER_AUDIENCE": str(claims.get("aud") or ""),
                        "PEER_JWKS_URL": f"http://127.0.0.1:{GATEWAY}/.well-known/jwks.json",
                        "PEER_REDIS_URL": args.redis, "PEER_REDIS_PREFIX": f"{prefix}peer"}
            procs.append(subprocess.Popen([*uvicorn, "--port", str(PEER), "benchmarks.gateway.peer:peer_app"],
                                          env=peer_env, cwd=ROOT, stderr=subprocess.DEVNULL))
            wait_http(f"http://127.0.0.1:{PEER}/")
            httpx.post(f"http://127.0.0.1:{PEER}{PATH}", content=BODY, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json"}).raise_for_status()
            targets.append(Target("e", "Python peer: FastAPI + slowapi (Redis) + PyJWT + pydantic",
                                  f"http://127.0.0.1:{PEER}{PATH}", [procs[-1].pid], auth=True))
        for t in targets:  # warm-up: pools, caches, keys, the token cache
            wrk(t, 2, args.concurrency, token, tmp)
        for _ in range(args.runs):
            for t in targets:
                t.samples.append(wrk(t, args.seconds, args.concurrency, token, tmp))
                print(f"{t.key} {t.label:34} {t.samples[-1]}", flush=True)
        by_key = {t.key: t for t in targets}
        half = by_key["a"].median("rps") / 2
        fixed: dict[str, list[Sample]] = {"a": [], "b": []}
        for _ in range(args.runs):
            for key in fixed:
                fixed[key].append(wrk(by_key[key], args.seconds, args.concurrency, token, tmp, rate=half))
                print(f"fixed {half:.0f}/s {key} {fixed[key][-1]}", flush=True)
    finally:
        stop(procs, nginx)
    write_results(args, targets, fixed, half, rate_limited, limited, load_before, os.getloadavg())


def write_results(args: argparse.Namespace, targets: list[Target], fixed: dict[str, list[Sample]], half: float,
                  rate_limited: bool, limited: bool, load_before: tuple[float, float, float],
                  load_after: tuple[float, float, float]) -> None:
    t = {x.key: x for x in targets}
    a, b, c, d = t["a"], t["b"], t["c"], t["d"]
    ratio_ba = b.median("rps") / a.median("rps")
    ratio_dc = d.median("rps") / c.median("rps")
    p99_fixed = {k: statistics.median(s.p99_ms for s in v) for k, v in fixed.items()}
    p50_fixed = {k: statistics.median(s.p50_ms for s in v) for k, v in fixed.items()}
    achieved = {k: statistics.median(s.rps for s in v) for k, v in fixed.items()}
    added = p99_fixed["b"] - p99_fixed["a"]
    rows = "\n".join(
        f"| ({x.key}) {x.label} | {x.median('rps'):,.0f} | {x.median('p50_ms'):.2f} | {x.median('p99_ms'):.2f} | "
        f"{x.median('cpu_ms_per_req'):.3f} | {sum(s.errors for s in x.samples)} |" for x in targets)
    rounds = "\n".join(
        f"| ({x.key}) | " + " | ".join(f"{s.rps:,.0f}" for s in x.samples) + " |" for x in targets)

    def met(ok: bool, by: str) -> str:
        return f"**met** ({by})" if ok else f"**not met** ({by})"

    peer_row = ""
    if "e" in t:
        e = t["e"]
        over = b.median("rps") / e.median("rps")
        cpu_eb = e.median("cpu_ms_per_req") / b.median("cpu_ms_per_req")
        peer_row = (f"| governed / Python peer throughput | {over:.2f}× (CPU/req (e)/(b) {cpu_eb:.2f}×)"
                    f" | ≥ 4× | {met(over >= 4, f'{over / 4:.0%} of the goal')} |\n")
    lb, la = load_before, load_after
    cpu_ab = a.median("cpu_ms_per_req") / b.median("cpu_ms_per_req")
    cpu_cd = c.median("cpu_ms_per_req") / d.median("cpu_ms_per_req")
    text = f"""# Gateway benchmark results

Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores ({platform.processor() or
platform.machine()}), Python {platform.python_version()}; one worker per server (uvicorn, nginx
`worker_processes 1`), load generator `wrk -t1 -c{args.concurrency}` on the same machine, {args.seconds:g} s per run,
medians of {args.runs} interleaved rounds (every target once per round) in one session.
Load average (1/5/15 min): {lb[0]:.2f} / {lb[1]:.2f} / {lb[2]:.2f} at the start, {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f}
at the end — the machine is shared; figures taken under other load are lower and noisier than on an idle one,
and CPU ms per request is the figure least hurt by that.

Command:

    make bench-gateway
    # = .venv/bin/python -m benchmarks.gateway.run --runs {args.runs} --seconds {args.seconds:g}

Endpoint: `POST /bench/v1/orders` with a 30-byte JSON body decoded into a Struct and echoed.
(b) runs the full gateway chain: JWT (ES256) verification (a validated token is remembered for 60 s),
scope check, {"Redis rate limit and quota counters (Redis at " + args.redis + ")" if rate_limited else
 "NO rate limit (the rate-limit policy was not active in this build)"}, request validation
(size, content type, UTF-8, depth), idempotency (not required on this route), versioning headers, correlation
ids, usage counters and the JSON access log. (d) is the same chain plus the aiohttp proxy hop to (a).
(e) is what a Python team would write instead (benchmarks/gateway/peer.py): FastAPI + pydantic, PyJWT with the
gateway's JWKS, issuer, audience, expiry and scope on every request, slowapi on the same Redis with the same
per-second and per-minute limits per client, size and content-type checks, correlation id and access log.
(f) is nginx answering `return 200` itself: the floor of an HTTP server on this machine.
{"" if limited else "The bindings declared no plans, so no rate limit ran."}

## Peak throughput ({args.concurrency} connections)

| target | req/s | p50 ms | p99 ms | CPU ms/req (server side) | errors |
|---|---:|---:|---:|---:|---:|
{rows}

CPU per request counts every server process on the path: (c) nginx + (a), (d) gateway + (a); errors are
responses ≥ 400 and socket errors. Req/s of each round, in the order run:

| target | rounds |
|---|---|
{rounds}

## Targets

| target | measured | goal | |
|---|---:|---:|---|
| (b)/(a) throughput | {ratio_ba:.2f} (CPU/req (a)/(b) {cpu_ab:.2f}) \
| ≥ 0.6 | {met(ratio_ba >= 0.6, f'{ratio_ba / 0.6:.0%} of the goal')} |
{peer_row}| (d)/(c) throughput | {ratio_dc:.2f} (CPU/req (c)/(d) {cpu_cd:.2f}) \
| ≥ 0.5 | {met(ratio_dc >= 0.5, f'{ratio_dc / 0.5:.0%} of the goal')} |
| p99 added by the governed path at a fixed {half:,.0f} req/s (half of (a)'s peak) | {added:.2f} ms \
(p99 a {p99_fixed['a']:.2f} → b {p99_fixed['b']:.2f}; p50 {p50_fixed['a']:.2f} → {p50_fixed['b']:.2f}; achieved \
a {achieved['a']:,.0f}/s, b {achieved['b']:,.0f}/s) | ≤ 1 ms | {met(added <= 1.0, f'{added - 1.0:+.2f} ms')} |

The fixed offered load: wrk has no fixed-rate mode (wrk2's `-R`), so the runner's Lua script keeps one
schedule per wrk thread in `delay()` — a request slot every 1/rate s (monotonic clock through LuaJIT's FFI),
taken by whichever of the {args.concurrency} connections asks next; a late slot is sent at once. The offered rate
therefore holds while the server keeps up; when it cannot, the achieved rate falls below the offered one and
the latencies (measured from each request's write, as wrk does) understate the queueing — read the achieved
rates beside the p99.
"""
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
