"""`psconnect accounts list|grant|revoke|bootstrap`: portal roles from the server's own command line.

Whoever runs `psconnect` on the server already holds its database, so it may grant
and revoke the portal's `admin` and `operations` roles; each change is audited (actor
`psconnect-cli:<os user>`). `bootstrap` prints the one-time link that makes the
signed-in person who opens it the first admin — only while no admin exists. These
commands need only the database, not a running gateway.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from contracts.problems import ProblemError
from foundation.db import create_engine, metadata
from gateway.settings import load_settings
from web.portal.accounts import ROLES, Account, Accounts, upgrade_schema

__all__ = ["register"]


def _accounts() -> Accounts:
    settings = load_settings()
    engine = create_engine(settings.database_url)
    metadata.create_all(engine)
    upgrade_schema(engine)
    return Accounts(engine, base_url=settings.issuer)


def _show(account: Account) -> dict[str, object]:
    return {"email": account.email, "name": account.name, "roles": list(account.roles),
            "email_confirmed": account.email_confirmed}


def _fail(exc: ProblemError) -> int:
    print(f"psconnect accounts: {exc.problem.detail or exc.problem.title}", file=sys.stderr)
    return 2


def _list(_: argparse.Namespace) -> int:
    print(json.dumps([_show(a) for a in _accounts().all()], indent=2))
    return 0


def _set_role(args: argparse.Namespace, held: bool) -> int:
    accounts = _accounts()
    try:
        account = accounts.set_role(f"psconnect-cli:{getpass.getuser()}", accounts.by_email(args.email).id,
                                    args.role, held)
    except ProblemError as exc:
        return _fail(exc)
    print(json.dumps(_show(account), indent=2))
    return 0


def _bootstrap(_: argparse.Namespace) -> int:
    link = _accounts().enrolment_link()
    if link is None:
        print("psconnect accounts: the portal has an admin already; grant roles with "
              "`psconnect accounts grant --email … --role admin`", file=sys.stderr)
        return 2
    print("Open this link in a browser, signed in to the portal, to become its first admin "
          "(one use, valid 24 hours):")
    print(link)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `accounts` to the `psconnect` parser."""
    accounts = sub.add_parser("accounts", help="portal accounts and their roles").add_subparsers(
        dest="action", required=True)
    accounts.add_parser("list", help="every portal account with its roles").set_defaults(func=_list)
    for action, held, text in (("grant", True, "give an account a role (audited)"),
                               ("revoke", False, "take a role from an account (audited)")):
        cmd = accounts.add_parser(action, help=text)
        cmd.add_argument("--email", required=True)
        cmd.add_argument("--role", required=True, choices=ROLES)
        cmd.set_defaults(func=lambda a, held=held: _set_role(a, held))
    accounts.add_parser("bootstrap", help="print a one-time link that makes its opener the first admin"
                        ).set_defaults(func=_bootstrap)
