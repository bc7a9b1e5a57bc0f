"""`psconnect serve`: one process, or N worker processes sharing one port, Redis and PostgreSQL; in one role or all.

`--role gateway|worker` splits the stack across processes and hosts (docs/deployment.md):
gateways serve HTTP and queue workflow starts, workers run them, the schedules and the webhook
deliveries, and reach the system APIs through the gateways over HTTP.

Several workers are uvicorn's multiprocess mode: the parent binds the socket and
supervises; each worker imports `gateway.app.create_app` and builds its own gateway (its own
DBOS, pools and policy runtime) from the environment. Limits stay exact across
workers because they count in Redis. DBOS is not safe on SQLite from several
processes, so more than one worker needs PostgreSQL (DATABASE_URL) and Redis
(REDIS_URL); without them `serve` refuses with a message saying what to set.
Each worker is its own DBOS executor with a lease in PostgreSQL, so a worker's
start-up never re-runs a sibling's workflows and the workflows of a worker that
dies are finished by a survivor (gateway/executors.py).
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit

from cli.demo_client import ensure_demo_client
from gateway.app import Gateway
from gateway.settings import Settings

__all__ = ["PortInUse", "WorkersRefused", "banner", "check_port", "check_role", "check_workers", "prepare_metrics_dir",
           "serve"]


class WorkersRefused(Exception):
    """More than one worker was asked for on settings that cannot share state."""


class PortInUse(Exception):
    """Something already listens on the port `serve` was asked for."""


def check_port(host: str, port: int) -> None:
    """Raise `PortInUse` unless `host:port` can be bound now — before any banner claims the stack is running.

    The banner is printed at start-up, which uvicorn runs before it binds; a busy port would
    otherwise show "psconnect is running" with its URLs and then fail. SO_REUSEADDR as uvicorn
    sets it, so a port only in TIME_WAIT is not mistaken for a busy one.
    """
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise PortInUse(f"port {port} is in use on {host}") from exc
        return


def _unshared(settings: Settings) -> list[str]:
    """What several processes would each keep to themselves under these settings."""
    missing = []
    if not settings.database_url.startswith("postgresql"):
        missing.append("DATABASE_URL (PostgreSQL; durable workflows cannot share a SQLite file across processes)")
    if not settings.redis_url:
        missing.append("REDIS_URL (rate limits, quotas and idempotency records must be shared by the workers)")
    if settings.limits_store == "memory":
        missing.append("PSCONNECT_LIMITS_STORE=redis (memory counters would let each worker admit the full limit)")
    return missing


def check_workers(settings: Settings, workers: int) -> None:
    """Raise `WorkersRefused` unless `workers` processes can share this configuration."""
    if workers < 1:
        raise WorkersRefused("--workers must be at least 1")
    if workers > 1 and (missing := _unshared(settings)):
        raise WorkersRefused(f"--workers {workers} needs " + " and ".join(missing) + "; or run with --workers 1.")


def check_role(settings: Settings) -> None:
    """Raise `WorkersRefused` unless this process can take its role: apart, the roles share PostgreSQL and Redis,
    and a worker knows where the gateways are."""
    if settings.role == "all":
        return
    missing = _unshared(settings)
    if settings.role == "worker":
        if not settings.gateway_urls:
            missing.append("PSCONNECT_GATEWAY_URL (where the worker's process steps reach the system APIs)")
        for url in settings.gateway_urls:
            parsed = urlsplit(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path not in ("", "/"):
                raise WorkersRefused(f"PSCONNECT_GATEWAY_URL: {url!r} is not a gateway's base URL "
                                     "(http[s]://host[:port], no path)")
    if missing:
        raise WorkersRefused(f"--role {settings.role} needs " + " and ".join(missing) + "; or run with --role all.")


def banner(gateway: Gateway) -> None:
    """What `make run` prints once the stack answers: its URLs and the demo client's credentials."""
    settings = gateway.settings
    if settings.role == "worker":
        print(f"\npsconnect worker is running\n  health URL     http://{settings.host}:{settings.port}/health/ready\n"
              f"  gateways       {', '.join(settings.gateway_urls)}\n", flush=True)
        return
    lines = [
        "",
        "psconnect is running (embedded mode)" if settings.embedded else
        "psconnect is running" + (" (gateway role)" if settings.role == "gateway" else ""),
        f"  gateway URL    {settings.issuer}",
        f"  docs URL       {settings.issuer}/docs",
        f"  token URL      {settings.issuer}/oauth2/token",
    ]
    if settings.seed_demo:
        client_id, secret = ensure_demo_client(gateway.oauth, settings.home)
        lines += [f"  demo client    {client_id}", f"  demo secret    {secret}",
                  "  try it         .venv/bin/psconnect demo"]
    print("\n".join(lines) + "\n", flush=True)


def prepare_metrics_dir(home: str) -> str:
    """Point the workers' Prometheus client at one emptied directory, so `/metrics` on any worker is the sum of all.

    prometheus-client's multiprocess mode: each worker writes its values to files there and a scrape merges
    them. Emptied at start, so a previous run's counters never add to this one's. PROMETHEUS_MULTIPROC_DIR,
    when already set, names the directory.
    """
    directory = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or Path(home) / "prometheus")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return str(directory)


def serve(settings: Settings, *, workers: int = 1) -> int:
    """Serve until interrupted; several workers share one socket (the parent supervises them)."""
    import uvicorn

    check_workers(settings, workers)
    check_role(settings)
    check_port(settings.host, settings.port)
    if workers == 1:
        from gateway.app import create_gateway

        gateway = create_gateway(settings)
        gateway.litestar.on_startup.append(lambda: banner(gateway))
        uvicorn.run(gateway.app, host=settings.host, port=settings.port, log_level="warning", lifespan="on",
                    access_log=False)
        return 0
    from gateway.app import create_tables
    from gateway.vendors import load_settings_connections
    from policies.bindings import load_bindings

    load_bindings()  # the workers read it on their own: a bad file stops here, with one line, not N tracebacks
    load_settings_connections(settings)  # likewise the connections file
    create_tables(settings)
    # Workers re-read settings from the environment: carry the command-line overrides there.
    os.environ["PSCONNECT_HOST"] = settings.host
    os.environ["PSCONNECT_PORT"] = str(settings.port)
    os.environ["PSCONNECT_HOME"] = settings.home_dir
    os.environ["PSCONNECT_ROLE"] = settings.role
    prepare_metrics_dir(settings.home_dir)
    print(f"\npsconnect is running with {workers} workers\n  gateway URL    {settings.issuer}\n"
          f"  docs URL       {settings.issuer}/docs\n", flush=True)
    uvicorn.run("gateway.app:create_app", factory=True, host=settings.host, port=settings.port,
                workers=workers, log_level="warning", lifespan="on", access_log=False)
    return 0
