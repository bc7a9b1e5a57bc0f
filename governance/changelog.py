"""A changelog generated from the diff between two versions of the contracts.

What a consumer reads on the portal (`GET /apis/{name}/changelog`) and what a release note
quotes: the diff's findings, grouped per API version into breaking changes, deprecations,
other notable changes and additions. The pairs compared are the last release
(`contracts/releases/`) against the current contracts, and, when an API publishes two
major versions, the older major against the newer one.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any, Final

import msgspec

from governance.diff import diff_document
from governance.findings import Finding

__all__ = ["Change", "Changelog", "changelog", "changelogs", "to_markdown"]

_SECTIONS: Final = (("breaking", "Breaking changes"), ("deprecated", "Deprecations"), ("warning", "Changes to review"),
                    ("info", "Additions and compatible changes"))
_KEY: Final = re.compile(r"^(?P<api>.+)\.(?P<version>v\d+)$")


class Change(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    severity: str
    location: str
    description: str


class Changelog(msgspec.Struct, frozen=True, kw_only=True):
    """The changes from one contract version to the next."""

    api: str
    from_version: str
    to_version: str
    from_label: str
    to_label: str
    breaking: bool
    changes: tuple[Change, ...]


def changelog(api: str, old_key: str, old: dict[str, Any], new_key: str, new: dict[str, Any], *,
              from_label: str, to_label: str, today: dt.date | None = None) -> Changelog:
    findings = diff_document(new_key, old, new, today=today)
    return Changelog(api=api, from_version=old_key.rsplit(".", 1)[-1], to_version=new_key.rsplit(".", 1)[-1],
                     from_label=from_label, to_label=to_label,
                     breaking=any(f.severity == "breaking" for f in findings),
                     changes=tuple(_change(f) for f in findings))


def _change(f: Finding) -> Change:
    return Change(kind=f.rule, severity=f.severity, location=f.location, description=f.message)


def changelogs(released: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]], *,
               api: str | None = None, today: dt.date | None = None) -> list[Changelog]:
    """Release -> current for each version, then older major -> newer major for each API with two."""
    out: list[Changelog] = []
    by_api: dict[str, list[str]] = {}
    for key in sorted(current):
        match = _KEY.match(key)
        if match is None or (api is not None and match["api"] != api):
            continue
        by_api.setdefault(match["api"], []).append(key)
        if key in released:
            out.append(changelog(match["api"], key, released[key], key, current[key], from_label="last release",
                                 to_label="current", today=today))
    for name, keys in sorted(by_api.items()):
        ordered = sorted(keys, key=lambda k: int(k.rsplit(".v", 1)[-1]))
        for older, newer in itertools.pairwise(ordered):
            out.append(changelog(name, older, current[older], newer, current[newer], from_label=older,
                                 to_label=newer, today=today))
    return out


def _section(change: Change) -> str:
    if change.kind == "operation-deprecated":
        return "deprecated"
    return change.severity


def to_markdown(logs: list[Changelog]) -> str:
    lines = ["# Contract changelog", ""]
    if not logs:
        lines.append("No published contract has a previous version to compare with.")
    for log in logs:
        title = f"{log.api} {log.to_version}" if log.from_version == log.to_version else (
            f"{log.api} {log.from_version} → {log.to_version}")
        lines += [f"## {title} ({log.from_label} → {log.to_label})", ""]
        if not log.changes:
            lines += ["No changes.", ""]
            continue
        for section, heading in _SECTIONS:
            items = [c for c in log.changes if _section(c) == section]
            if items:
                lines += [f"### {heading}", ""] + [f"- `{c.location}`: {c.description}" for c in items] + [""]
    return "\n".join(lines).rstrip() + "\n"
