"""The `psconnect` command: serve the stack, run the demo, manage clients, keys and contracts."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from cli import commands

__all__ = ["build_parser", "main"]


PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _serve(args: argparse.Namespace) -> int:
    from cli.serve import PortInUse, WorkersRefused, serve
    from gateway.settings import load_settings

    flags = {"host": args.host, "port": args.port, "role": args.role}
    try:
        settings = load_settings(**{k: v for k, v in flags.items() if v is not None})
    except ValueError as exc:  # PSCONNECT_ROLE=gatewya: one line, like a bad flag
        print(f"psconnect serve: {exc}", file=sys.stderr)
        return 2
    try:
        return serve(settings, workers=args.workers)
    except WorkersRefused as exc:
        print(f"psconnect serve: {exc}", file=sys.stderr)
        return 2
    except PortInUse as exc:
        print(f"psconnect serve: {exc}", file=sys.stderr)
        return 1


def _with_period(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Check `--period` here, before any gateway is asked: one line and exit 2, like argparse's own errors."""
    def checked(args: argparse.Namespace) -> int:
        if not PERIOD.match(args.period) or args.period.startswith("0000"):
            print(f"psconnect {args.command} {args.action}: --period {args.period!r} is not a month: "
                  "give YYYY-MM with a month from 01 to 12, e.g. 2026-10", file=sys.stderr)
            return 2
        return run(args)
    return checked


def _demo(args: argparse.Namespace) -> int:
    from cli.demo import run_demo

    return asyncio.run(run_demo(args.base_url, opportunity=args.opportunity, client_id=args.client_id,
                                client_secret=args.client_secret))


def _clients_create(args: argparse.Namespace) -> int:
    from gateway.app import create_gateway
    from gateway.openapi import catalog

    gateway = create_gateway()
    declared = {s for entry in catalog(gateway.litestar, gateway.bindings) for s in entry.scopes}
    unknown = [s for s in dict.fromkeys(args.scope) if s not in declared]
    if unknown:  # a scope no API declares would grant nothing today and something unplanned tomorrow
        print(f"psconnect clients create: no API declares the scope(s) {', '.join(unknown)}; "
              f"declared scopes are: {' '.join(sorted(declared))}", file=sys.stderr)
        return 2
    gateway.oauth.create_tables()
    client_id, secret = gateway.oauth.clients.create(args.name, args.scope, client_id=args.client_id,
                                                     legal_entities=args.legal_entity or None)
    print(json.dumps({"client_id": client_id, "client_secret": secret, "scopes": args.scope,
                      "legal_entities": args.legal_entity or None,
                      "note": "the secret is shown once; store it now"}, indent=2))
    return 0


def _migrate(_: argparse.Namespace) -> int:
    """Create the shared tables once, before the processes of a distributed layout start (they would race)."""
    from gateway.app import create_tables
    from gateway.settings import load_settings

    settings = load_settings()
    create_tables(settings)
    print(f"psconnect migrate: tables ready in {settings.database_url.split('@')[-1]}")
    return 0


def _keys_rotate(_: argparse.Namespace) -> int:
    from gateway.app import create_gateway

    gateway = create_gateway()
    gateway.oauth.create_tables()
    kid = gateway.oauth.keys.rotate()
    print(json.dumps({"active_kid": kid, "jwks": gateway.oauth.keys.jwks()}, indent=2))
    return 0


def _simulators(args: argparse.Namespace) -> int:
    from cli.simulators import serve_simulators
    from system_apis.connections import load_connections

    connections = load_connections(Path(args.connections)) if args.connections else None
    asyncio.run(serve_simulators(args.host, args.port_base, connections))
    return 0


def _contracts_generate(args: argparse.Namespace) -> int:
    from gateway.app import create_gateway
    from gateway.openapi import write_published

    changed = write_published(create_gateway(), Path(args.directory), check=args.check)
    if args.check and changed:
        print("published contracts differ from the code: " + ", ".join(changed), file=sys.stderr)
        print("run `psconnect contracts generate` and commit the result", file=sys.stderr)
        return 1
    print(("up to date: " if args.check else "written: ") + (", ".join(changed) or "nothing changed"))
    return 0


def _add_process_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`billing run|reconcile`, `workers sync` and `receivables poll`: through a running gateway (`make run` /
    `psconnect serve`)."""
    def client_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--base-url", default="http://127.0.0.1:8000")
        p.add_argument("--client-id")
        p.add_argument("--client-secret")

    billing = sub.add_parser("billing", help="time-to-bill").add_subparsers(dest="action", required=True)
    run = billing.add_parser("run", help="bill a legal entity's approved time for a period, with progress")
    run.add_argument("--legal-entity", required=True, help="e.g. US01, or * for every legal entity")
    run.add_argument("--period", required=True, help="YYYY-MM")
    client_flags(run)
    run.set_defaults(func=_with_period(lambda a: asyncio.run(commands.billing_run(
        a.base_url, a.legal_entity, a.period, a.client_id, a.client_secret))))
    rec = billing.add_parser("reconcile", help="approved vs posted vs invoiced, per project")
    rec.add_argument("--period", required=True)
    target = rec.add_mutually_exclusive_group(required=True)
    target.add_argument("--project")
    target.add_argument("--legal-entity")
    client_flags(rec)
    rec.set_defaults(func=_with_period(lambda a: asyncio.run(commands.billing_reconcile(
        a.base_url, a.period, project=a.project, legal_entity=a.legal_entity, client_id=a.client_id,
        client_secret=a.client_secret))))
    workers = sub.add_parser("workers", help="HR worker sync").add_subparsers(dest="action", required=True)
    sync = workers.add_parser("sync", help="push HR changes to PSA users and ERP employees")
    sync.add_argument("--full", action="store_true", help="push every worker, changed or not")
    client_flags(sync)
    sync.set_defaults(func=lambda a: asyncio.run(commands.workers_sync(
        a.base_url, full=a.full, client_id=a.client_id, client_secret=a.client_secret)))
    receivables = sub.add_parser("receivables", help="invoice status and payments from the ERPs").add_subparsers(
        dest="action", required=True)
    poll = receivables.add_parser("poll", help="read back what every ERP changed on invoices since the last poll")
    poll.add_argument("--full", action="store_true", help="read every invoice again")
    client_flags(poll)
    poll.set_defaults(func=lambda a: asyncio.run(commands.receivables_poll(
        a.base_url, full=a.full, client_id=a.client_id, client_secret=a.client_secret)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psconnect", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start the gateway and every API (embedded mode by default)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes sharing the port (more than 1 needs PostgreSQL and Redis)")
    serve.add_argument("--role", choices=("all", "gateway", "worker"), default=None, help=(
        "all (default, PSCONNECT_ROLE): one process does everything; gateway: HTTP and policies, workflows "
        "queued; worker: runs workflows, schedules and deliveries, reaching the gateways at PSCONNECT_GATEWAY_URL"))
    serve.set_defaults(func=_serve)

    demo = sub.add_parser("demo", help="provision a won opportunity through the gateway, as a client would")
    demo.add_argument("--base-url", default="http://127.0.0.1:8000",
                      help="a running gateway; when none answers there, an embedded one is started")
    demo.add_argument("--opportunity", help="CRM id or external id (default: the first unprovisioned won deal)")
    demo.add_argument("--client-id")
    demo.add_argument("--client-secret")
    demo.set_defaults(func=_demo)

    clients = sub.add_parser("clients", help="OAuth clients").add_subparsers(dest="action", required=True)
    create = clients.add_parser("create", help="register a client-credentials client; prints its secret once")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", action="append", required=True, help="repeat for several scopes")
    create.add_argument("--client-id")
    create.add_argument("--legal-entity", action="append", help="restrict to these legal-entity codes")
    create.set_defaults(func=_clients_create)

    sub.add_parser("migrate", help="create the tables before the processes of a distributed layout start"
                   ).set_defaults(func=_migrate)

    keys = sub.add_parser("keys", help="token signing keys").add_subparsers(dest="action", required=True)
    keys.add_parser("rotate", help="make a new signing key; the old one verifies until its tokens expire"
                    ).set_defaults(func=_keys_rotate)

    _add_process_commands(sub)
    from cli.accounts import register as register_accounts
    register_accounts(sub)

    sims = sub.add_parser("simulators", help="serve the vendor simulators as separate HTTP servers")
    sims.add_argument("--host", default="127.0.0.1")
    sims.add_argument("--port-base", type=int, default=9100)
    sims.add_argument("--connections", metavar="FILE", help=(
        "serve one simulator per account of this connections file (keyed by connection name), seeded with "
        "the entities each serves"))
    sims.set_defaults(func=_simulators)

    contracts = sub.add_parser("contracts", help="published OpenAPI contracts").add_subparsers(dest="action",
                                                                                              required=True)
    gen = contracts.add_parser("generate", help="write contracts/openapi/*.json from the code")
    gen.add_argument("--directory", default="contracts/openapi")
    gen.add_argument("--check", action="store_true", help="fail when the published files differ from the code")
    gen.set_defaults(func=_contracts_generate)
    from governance.cli import register as register_governance
    register_governance(contracts)
    return parser


def main(argv: list[str] | None = None) -> int:
    from policies.bindings import BindingsError
    from system_apis.connections import ConnectionsError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (BindingsError, ConnectionsError) as exc:  # every command that builds a gateway reads both files first
        print(f"psconnect {args.command}: {exc}", file=sys.stderr)
        return 2
