"""Reading OpenAPI documents the way every governance check needs them: by key, with local `$ref`s followed.

A contract set is a file or a directory of `<api>.<version>.json` files (the layout of
`contracts/openapi/` and `contracts/releases/`); the file stem is the key that pairs an old
document with its new version in a diff.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import msgspec

__all__ = [
    "HTTP_METHODS",
    "Operation",
    "deref",
    "load_contracts",
    "operations",
    "problem_media",
    "sunset_of",
]

HTTP_METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")


def load_contracts(*locations: str | Path) -> dict[str, dict[str, Any]]:
    """Documents keyed by file stem (`system.crm.v1`), from files and directories of `.json`/`.yaml` files.

    Raises:
        FileNotFoundError: a location does not exist.
        ValueError: a file is not an OpenAPI document.
    """
    documents: dict[str, dict[str, Any]] = {}
    for location in locations:
        path = Path(location)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".yaml", ".yml") and p.is_file())
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(f"no contract file or directory at {path}")
        for file in files:
            documents[file.name.rsplit(".", 1)[0]] = _read(file)
    return documents


def _read(file: Path) -> dict[str, Any]:
    raw = file.read_bytes()
    try:
        doc = json.loads(raw) if file.suffix == ".json" else msgspec.yaml.decode(raw)
    except (ValueError, msgspec.DecodeError) as exc:
        raise ValueError(f"{file}: not JSON/YAML: {exc}") from exc
    if not isinstance(doc, dict) or "openapi" not in doc or not isinstance(doc.get("paths", {}), dict):
        raise ValueError(f"{file}: not an OpenAPI document (no `openapi` field)")
    return doc


class Operation(msgspec.Struct, frozen=True):
    """One operation of a document, with the path item's shared parameters merged in."""

    path: str
    method: str
    node: dict[str, Any]
    parameters: tuple[dict[str, Any], ...]

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def operation_id(self) -> str | None:
        value = self.node.get("operationId")
        return value if isinstance(value, str) else None


def operations(doc: dict[str, Any]) -> Iterator[Operation]:
    for path, item in sorted(doc.get("paths", {}).items()):
        if not isinstance(item, dict):
            continue
        shared = [deref(doc, p) for p in item.get("parameters", [])]
        for method in HTTP_METHODS:
            node = item.get(method)
            if isinstance(node, dict):
                own = [deref(doc, p) for p in node.get("parameters", [])]
                keys = {(p.get("in"), p.get("name")) for p in own}
                merged = [p for p in shared if (p.get("in"), p.get("name")) not in keys] + own
                yield Operation(path, method, node, tuple(merged))


def deref(doc: dict[str, Any], node: Any, *, _depth: int = 0) -> Any:
    """`node` with a local `$ref` followed (repeatedly); any other node unchanged."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        if _depth > 32:
            raise ValueError(f"$ref chain too deep at {node['$ref']}")
        target: Any = doc
        for part in node["$ref"][2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise ValueError(f"unresolvable $ref {node['$ref']}")
            target = target[part]
        node = target
        _depth += 1
    return node


def problem_media(doc: dict[str, Any], response: Any) -> bool:
    """Whether a response (or its `$ref`) documents an `application/problem+json` body."""
    content = deref(doc, response).get("content", {}) if isinstance(deref(doc, response), dict) else {}
    return isinstance(content, dict) and "application/problem+json" in content


def sunset_of(doc: dict[str, Any], node: dict[str, Any] | None = None) -> dt.date | None:
    """The sunset date a deprecated element carries, from the most specific place that states one.

    Looked up in order: `x-sunset` on the element; a `Sunset` response header documented on it
    (its `example` or a date in its description); the document's `info.x-deprecation.sunset`.
    """
    candidates: list[Any] = []
    if node is not None:
        candidates.append(node.get("x-sunset"))
        for response in (node.get("responses") or {}).values():
            header = deref(doc, deref(doc, response).get("headers", {}).get("Sunset")) if isinstance(
                deref(doc, response), dict) else None
            if isinstance(header, dict):
                candidates += [header.get("example"), header.get("description")]
    info = doc.get("info", {})
    candidates.append((info.get("x-deprecation") or {}).get("sunset") if isinstance(info, dict) else None)
    for value in candidates:
        date = _date(value)
        if date is not None:
            return date
    return None


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        return None
    match = _DATE.search(value)
    if match is None:
        try:  # an HTTP-date, as a Sunset header example carries it
            from email.utils import parsedate_to_datetime

            return parsedate_to_datetime(value).date()
        except (TypeError, ValueError, IndexError):
            return None
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None
