"""What every check reports, and the text, JSON and JUnit renderings CI systems read.

A finding names its rule, a severity, the document (contract key) and the place in it.
Lint severities are `error`/`warning`/`info`; diff severities are `breaking`/`warning`/`info`.
Which severities fail a run is the caller's choice (`--fail-on`), so one report serves
both a strict release gate and an advisory pull-request check.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Final
from xml.etree import ElementTree as ET

import msgspec

__all__ = ["RANK", "Finding", "failing", "render", "to_json", "to_junit", "to_text"]

# Higher is worse; `--fail-on X` fails on X and anything ranked above it.
RANK: Final = {"info": 0, "warning": 1, "error": 2, "breaking": 2}


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One observation about one place in one contract."""

    rule: str
    severity: str
    document: str
    location: str
    message: str


def failing(findings: Iterable[Finding], fail_on: str) -> list[Finding]:
    """The findings at or above the `fail_on` severity (`none` fails on nothing)."""
    if fail_on == "none":
        return []
    threshold = RANK[fail_on]
    return [f for f in findings if RANK.get(f.severity, 0) >= threshold]


def _sorted(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.document, -RANK.get(f.severity, 0), f.location, f.rule, f.message))


def to_text(findings: Sequence[Finding], *, title: str, documents: Sequence[str], fail_on: str) -> str:
    lines = [title]
    for f in _sorted(findings):
        lines.append(f"  {f.severity:<8} {f.document}  {f.location}  {f.message}  [{f.rule}]")
    counts = {s: sum(1 for f in findings if f.severity == s) for s in ("breaking", "error", "warning", "info")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"
    verdict = "FAILED" if failing(findings, fail_on) else "passed"
    lines.append(f"{len(documents)} contract(s): {summary} — {verdict} (fail on: {fail_on})")
    return "\n".join(lines) + "\n"


def to_json(findings: Sequence[Finding], *, title: str, documents: Sequence[str], fail_on: str) -> str:
    payload = {
        "title": title,
        "documents": list(documents),
        "fail_on": fail_on,
        "passed": not failing(findings, fail_on),
        "findings": [msgspec.to_builtins(f) for f in _sorted(findings)],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def to_junit(findings: Sequence[Finding], *, title: str, documents: Sequence[str], fail_on: str,
             rules: Sequence[str]) -> str:
    """One test suite per contract, one test case per rule: a rule fails when it has a failing finding.

    Passing rules are listed too, so a CI dashboard shows what was checked, not only what broke.
    Findings below the failure threshold go to the case's `system-out`.
    """
    root = ET.Element("testsuites", name=title)
    failed_total = 0
    for document in documents:
        mine = [f for f in findings if f.document == document]
        all_rules = sorted(set(rules) | {f.rule for f in mine})
        suite = ET.SubElement(root, "testsuite", name=document, tests=str(len(all_rules)))
        failures = 0
        for rule in all_rules:
            case = ET.SubElement(suite, "testcase", classname=document, name=rule)
            of_rule = _sorted(f for f in mine if f.rule == rule)
            bad = failing(of_rule, fail_on)
            if bad:
                failures += 1
                failure = ET.SubElement(case, "failure", message=f"{len(bad)} finding(s)", type=bad[0].severity)
                failure.text = "\n".join(f"{f.severity} {f.location}: {f.message}" for f in bad)
            rest = [f for f in of_rule if f not in bad]
            if rest:
                ET.SubElement(case, "system-out").text = "\n".join(
                    f"{f.severity} {f.location}: {f.message}" for f in rest)
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        failed_total += failures
    root.set("failures", str(failed_total))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render(fmt: str, findings: Sequence[Finding], *, title: str, documents: Sequence[str], fail_on: str,
           rules: Sequence[str]) -> str:
    """The report in `text`, `json` or `junit`."""
    if fmt == "json":
        return to_json(findings, title=title, documents=documents, fail_on=fail_on)
    if fmt == "junit":
        return to_junit(findings, title=title, documents=documents, fail_on=fail_on, rules=rules)
    return to_text(findings, title=title, documents=documents, fail_on=fail_on)
