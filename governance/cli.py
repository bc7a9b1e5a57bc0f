"""The governance actions of `psconnect contracts`: lint, diff, changelog, test.

Each prints a report in text (default), JSON or JUnit, to stdout or `--output`, and exits
non-zero when a finding reaches `--fail-on` — the contract a CI step needs. `cli.main`
calls `register` to add these actions beside `generate`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

_PUBLISHED = "contracts/openapi"
_RELEASES = "contracts/releases"


def _emit(text: str, output: str | None) -> None:
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def _lint(args: argparse.Namespace) -> int:
    from governance.findings import failing, render
    from governance.lint import RULES, lint_documents
    from governance.spec import load_contracts

    documents = load_contracts(*(args.paths or [_PUBLISHED]))
    findings = lint_documents(documents)
    _emit(render(args.format, findings, title="psconnect contracts lint", documents=sorted(documents),
                 fail_on=args.fail_on, rules=list(RULES)), args.output)
    return 1 if failing(findings, args.fail_on) else 0


def _diff(args: argparse.Namespace) -> int:
    from governance.diff import RULES, diff_contracts
    from governance.findings import failing, render
    from governance.spec import load_contracts

    old, new = load_contracts(args.old), load_contracts(args.new)
    findings = diff_contracts(old, new, today=args.today)
    _emit(render(args.format, findings, title=f"psconnect contracts diff {args.old} {args.new}",
                 documents=sorted(set(old) | set(new)), fail_on=args.fail_on, rules=list(RULES)), args.output)
    return 1 if failing(findings, args.fail_on) else 0


def _changelog(args: argparse.Namespace) -> int:
    import msgspec

    from governance.changelog import changelogs, to_markdown
    from governance.spec import load_contracts

    released = load_contracts(args.old) if Path(args.old).exists() else {}
    logs = changelogs(released, load_contracts(args.new), api=args.api, today=args.today)
    if args.format == "json":
        text = json.dumps(msgspec.to_builtins(logs), indent=2, ensure_ascii=False) + "\n"
    else:
        text = to_markdown(logs)
    _emit(text, args.output)
    return 0


def _test(args: argparse.Namespace) -> int:
    from governance.live_test import LiveTestError, run_live_tests

    client_id = args.client_id or os.environ.get("PSCONNECT_CLIENT_ID")
    secret = args.client_secret or os.environ.get("PSCONNECT_CLIENT_SECRET")
    if not client_id or not secret:
        print("client credentials needed: --client-id/--client-secret or PSCONNECT_CLIENT_ID/_SECRET",
              file=sys.stderr)
        return 2
    try:
        results = run_live_tests(args.base_url, client_id, secret, report_dir=Path(args.report_dir),
                                 max_examples=args.max_examples, apis=args.api or None,
                                 checks=tuple(c.strip() for c in args.checks.split(",") if c.strip()),
                                 jobs=args.jobs, max_response_time=args.max_response_time)
    except LiveTestError as exc:
        print(f"contract tests could not run: {exc}", file=sys.stderr)
        return 2
    return 0 if results and all(r.passed for r in results) else 1


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def _report_options(parser: argparse.ArgumentParser, fail_on: str, choices: list[str]) -> None:
    parser.add_argument("--format", choices=["text", "json", "junit"], default="text")
    parser.add_argument("--output", "-o", help="write the report here instead of stdout")
    parser.add_argument("--fail-on", choices=[*choices, "none"], default=fail_on,
                        help=f"exit 1 when a finding is this severe or worse (default {fail_on})")


def register(subparsers: Any) -> None:
    """Add `lint`, `diff`, `changelog` and `test` to the `psconnect contracts` action parser."""
    lint = subparsers.add_parser("lint", help="check contracts against the house rules")
    lint.add_argument("paths", nargs="*", help=f"files or directories (default {_PUBLISHED})")
    _report_options(lint, "error", ["error", "warning", "info"])
    lint.set_defaults(func=_lint)

    diff = subparsers.add_parser("diff", help="breaking changes between two versions of the contracts")
    diff.add_argument("old", help="file or directory of the older contracts (e.g. contracts/releases)")
    diff.add_argument("new", help="file or directory of the newer contracts (e.g. contracts/openapi)")
    diff.add_argument("--today", type=_date, default=None,
                      help="the date sunsets are measured against (default: today)")
    _report_options(diff, "breaking", ["breaking", "warning", "info"])
    diff.set_defaults(func=_diff)

    log = subparsers.add_parser("changelog", help="changelog from the last release to the current contracts")
    log.add_argument("--old", default=_RELEASES, help=f"released contracts (default {_RELEASES})")
    log.add_argument("--new", default=_PUBLISHED, help=f"current contracts (default {_PUBLISHED})")
    log.add_argument("--api", help="only this API (e.g. system.crm)")
    log.add_argument("--today", type=_date, default=None)
    log.add_argument("--format", choices=["markdown", "json"], default="markdown")
    log.add_argument("--output", "-o")
    log.set_defaults(func=_changelog)

    test = subparsers.add_parser("test", help="schemathesis contract tests against a running deployment")
    test.add_argument("--base-url", required=True, help="the gateway, e.g. http://127.0.0.1:8000")
    test.add_argument("--client-id", help="or env PSCONNECT_CLIENT_ID")
    test.add_argument("--client-secret", help="or env PSCONNECT_CLIENT_SECRET")
    test.add_argument("--api", action="append", help="only this API (name or name.version); repeatable")
    test.add_argument("--max-examples", type=int, default=10, help="examples per operation and phase")
    test.add_argument("--jobs", type=int, default=1, help="APIs tested at once (one schemathesis process each)")
    from governance.live_test import DEFAULT_CHECKS

    test.add_argument("--checks", default=",".join(DEFAULT_CHECKS),
                      help="schemathesis checks, comma-separated, or `all` (default: the response conformance checks)")
    test.add_argument("--max-response-time", type=float, metavar="SECONDS",
                      help="the slowest answer the max_response_time check (on with `all`) accepts; default 10")
    test.add_argument("--report-dir", default="artifacts/contract-tests",
                      help="JUnit per API and merged contract-tests.xml land here")
    test.set_defaults(func=_test)
