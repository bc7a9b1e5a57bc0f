"""House rules every published contract must pass: `psconnect contracts lint`.

The rules are the conventions in docs/governance.md, written so that a consumer can rely on
them without reading the code: every operation is named, summarised and secured with scopes
the document declares; the problem+json errors a caller can meet are documented; lists page
with cursors; names follow one convention; examples are valid. Spectral's `spectral:oas` and
the OWASP API Security Top 10 2023 rules run beside these (`.spectral.yaml`); this module is
what needs no Node.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

from governance.findings import Finding
from governance.spec import Operation, deref, operations, problem_media, sunset_of

__all__ = ["RULES", "lint_document", "lint_documents"]

RULES: Final[dict[str, str]] = {
    "operation-id": "Every operation has an operationId, unique in its document.",
    "operation-id-format": "operationIds read `<api>.<verbNoun>` (`crm.listAccounts`), <api> the API's last name "
                           "part, snake_case or camelCase (`timeToBill`).",
    "operation-summary": "Every operation has a summary.",
    "operation-security": "Every operation is secured; OAuth2 requirements name scopes the scheme declares. Only the "
                          "gateway's own authorization-server endpoints may be public.",
    "problem-responses": "The problem+json errors an operation can answer are documented: 401 and 403 when it needs "
                         "a token, 429 when it is governed, 422 when it takes input.",
    "cursor-pagination": "List operations take `limit` and `cursor` and answer with a `next_cursor`.",
    "path-kebab-case": "Path segments are kebab-case; path parameters snake_case.",
    "schema-name-pascal-case": "Schema names are PascalCase (`_` joins generic arguments: `Page_Account`).",
    "property-snake-case": "Properties and query parameters are snake_case.",
    "example-valid": "Every example is valid against its schema.",
    "deprecation-sunset": "A deprecated operation or API carries a sunset date (x-sunset or a Sunset header).",
}

_VERB_NOUN = re.compile(r"^[a-z]+[A-Z][A-Za-z0-9]*$")
_KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*(?:\.[a-z0-9]+)?$")
_WELL_KNOWN = ".well-known"  # RFC 8615 fixes this segment's spelling
_PARAM = re.compile(r"^\{[a-z][a-z0-9]*(?:_[a-z0-9]+)*\}$")
_PASCAL = re.compile(r"^[A-Z][A-Za-z0-9]*(?:_[A-Z][A-Za-z0-9]*)*$")
_SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
_LIST_VERB = re.compile(r"\.list[A-Z]")
_GATEWAY_LAYER = "gateway"


def lint_documents(documents: dict[str, dict[str, Any]]) -> list[Finding]:
    return [f for key, doc in sorted(documents.items()) for f in lint_document(key, doc)]


def lint_document(key: str, doc: dict[str, Any]) -> list[Finding]:
    """All house-rule findings for one document (`key` names it in the report)."""
    out: list[Finding] = []

    def add(rule: str, location: str, message: str, severity: str = "error") -> None:
        out.append(Finding(rule=rule, severity=severity, document=key, location=location, message=message))

    info = doc.get("info", {})
    api = str(info.get("x-api") or key.rsplit(".", 1)[0])
    # operationIds are identifiers: `time_to_bill` may read `timeToBill` there.
    snake = api.rsplit(".", 1)[-1]
    short = re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), snake)
    public_allowed = info.get("x-layer") == _GATEWAY_LAYER
    if info.get("x-deprecation") is not None and sunset_of(doc) is None:
        add("deprecation-sunset", "info", "the API is deprecated without a sunset date")
    seen: dict[str, str] = {}
    for op in operations(doc):
        _operation_rules(doc, op, short, snake, public_allowed, seen, add)
    for name, schema in sorted(doc.get("components", {}).get("schemas", {}).items()):
        if not _PASCAL.match(name):
            add("schema-name-pascal-case", f"#/components/schemas/{name}", f"schema name {name!r} is not PascalCase")
        for where, prop in _properties(schema, f"#/components/schemas/{name}"):
            if not _SNAKE.match(prop):
                add("property-snake-case", where, f"property {prop!r} is not snake_case")
    for where, schema, example in _examples(doc):
        for problem in _invalid(doc, schema, example):
            add("example-valid", where, f"example does not match its schema: {problem}")
    return out


def _operation_rules(doc: dict[str, Any], op: Operation, short: str, snake: str, public_allowed: bool,
                     seen: dict[str, str], add: Any) -> None:
    where = op.label
    op_id = op.operation_id
    if not op_id:
        add("operation-id", where, "no operationId")
    elif op_id in seen:
        add("operation-id", where, f"operationId {op_id!r} also names {seen[op_id]}")
    else:
        seen[op_id] = where
        prefix, _, verb_noun = op_id.partition(".")
        if prefix not in (short, snake) or not _VERB_NOUN.match(verb_noun):
            add("operation-id-format", where, f"operationId {op_id!r} is not `{short}.<verbNoun>`")
    if not str(op.node.get("summary") or "").strip():
        add("operation-summary", where, "no summary")
    if op.node.get("deprecated") and sunset_of(doc, op.node) is None:
        add("deprecation-sunset", where, "deprecated without a sunset date (x-sunset or a documented Sunset header)")
    needs_token = _security(doc, op, public_allowed, add)
    _problems(doc, op, needs_token, add)
    _pagination(doc, op, add)
    for segment in op.path.strip("/").split("/"):
        if segment.startswith("{"):
            if not _PARAM.match(segment):
                add("path-kebab-case", where, f"path parameter {segment} is not snake_case")
        elif segment and segment != _WELL_KNOWN and not _KEBAB.match(segment):
            add("path-kebab-case", where, f"path segment {segment!r} is not kebab-case")
    for param in op.parameters:
        if param.get("in") == "query" and not _SNAKE.match(str(param.get("name"))):
            add("property-snake-case", where, f"query parameter {param.get('name')!r} is not snake_case")


def _security(doc: dict[str, Any], op: Operation, public_allowed: bool, add: Any) -> bool:
    """Check the operation's security; return whether it demands a credential."""
    where = op.label
    requirements = op.node.get("security", doc.get("security"))
    schemes = doc.get("components", {}).get("securitySchemes", {})
    if requirements is None:
        add("operation-security", where, "no security requirement (declare `security: []` if public on purpose)")
        return False
    anonymous = not requirements or any(not r for r in requirements)
    if anonymous and not public_allowed:
        add("operation-security", where, "callable without credentials; only the gateway's own endpoints may be")
    demands = False
    for requirement in requirements:
        for name, scopes in requirement.items():
            scheme = deref(doc, schemes.get(name))
            if not isinstance(scheme, dict):
                add("operation-security", where, f"security scheme {name!r} is not declared")
                continue
            if scheme.get("type") == "oauth2":
                declared = {s for flow in scheme.get("flows", {}).values() for s in flow.get("scopes", {})}
                if not scopes:
                    add("operation-security", where, f"OAuth2 requirement {name!r} names no scope")
                for scope in scopes:
                    if scope not in declared:
                        add("operation-security", where, f"scope {scope!r} is not declared by scheme {name!r}")
            demands = demands or not anonymous
    return demands


def _problems(doc: dict[str, Any], op: Operation, needs_token: bool, add: Any) -> None:
    responses = op.node.get("responses", {})
    oauth = any(deref(doc, doc.get("components", {}).get("securitySchemes", {}).get(n, {})).get("type") == "oauth2"
                for r in op.node.get("security", doc.get("security")) or [] for n in r)
    expected: list[tuple[str, str]] = []
    if needs_token:
        expected.append(("401", "it needs a credential"))
    if oauth:
        expected += [("403", "it requires scopes"), ("429", "it is governed by rate limits")]
    if op.parameters or "requestBody" in op.node:
        expected.append(("422", "it takes input"))
    for status, why in expected:
        if status not in responses:
            add("problem-responses", op.label, f"no {status} response documented, though {why}")
        elif not problem_media(doc, responses[status]):
            add("problem-responses", op.label, f"the {status} response is not application/problem+json")


def _pagination(doc: dict[str, Any], op: Operation, add: Any) -> None:
    if op.method != "get":
        return
    schema = _success_schema(doc, op)
    is_list = bool(op.operation_id and _LIST_VERB.search(op.operation_id))
    if schema.get("type") == "array":
        add("cursor-pagination", op.label, "answers with a bare array; wrap it in a page with next_cursor")
        return
    items = deref(doc, schema.get("properties", {}).get("items", {}))
    if not is_list and items.get("type") != "array":
        return
    names = {p.get("name") for p in op.parameters if p.get("in") == "query"}
    for missing in sorted({"limit", "cursor"} - names):
        add("cursor-pagination", op.label, f"list operation without a `{missing}` query parameter")
    if "next_cursor" not in schema.get("properties", {}):
        add("cursor-pagination", op.label, "list response has no `next_cursor`")


def _success_schema(doc: dict[str, Any], op: Operation) -> dict[str, Any]:
    for status, response in sorted(op.node.get("responses", {}).items()):
        if status.startswith("2"):
            content = deref(doc, response).get("content", {})
            media: dict[str, Any] = content.get("application/json") or next(iter(content.values()), {})
            schema = deref(doc, media.get("schema", {}))
            return schema if isinstance(schema, dict) else {}
    return {}


def _properties(schema: Any, where: str) -> Iterator[tuple[str, str]]:
    """(location, name) of every property declared in a schema, nested ones too (not through $ref)."""
    if isinstance(schema, dict):
        for name, sub in (schema.get("properties") or {}).items():
            yield f"{where}/properties/{name}", name
            yield from _properties(sub, f"{where}/properties/{name}")
        for key in ("items", "additionalProperties", "not"):
            yield from _properties(schema.get(key), f"{where}/{key}")
        for key in ("oneOf", "anyOf", "allOf"):
            for i, sub in enumerate(schema.get(key) or []):
                yield from _properties(sub, f"{where}/{key}/{i}")


def _examples(doc: dict[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """(location, schema, example) for every example in the document."""

    def walk(node: Any, where: str) -> Iterator[tuple[str, Any, Any]]:
        if isinstance(node, dict):
            schema = node.get("schema")
            if isinstance(schema, dict) and ("example" in node or "examples" in node):
                # A media type or parameter: `example`, or a map of Example objects.
                if "example" in node:
                    yield f"{where}/example", schema, node["example"]
                for name, ex in (node.get("examples") or {}).items():
                    ex = deref(doc, ex)
                    if isinstance(ex, dict) and "value" in ex:
                        yield f"{where}/examples/{name}", schema, ex["value"]
            if _is_schema(node):
                for i, ex in enumerate(node.get("examples") or [] if isinstance(node.get("examples"), list) else []):
                    yield f"{where}/examples/{i}", node, ex
                if "example" in node:
                    yield f"{where}/example", node, node["example"]
            for key, value in node.items():
                if key not in ("example", "examples"):
                    yield from walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from walk(value, f"{where}/{i}")

    yield from walk(doc.get("paths", {}), "#/paths")
    yield from walk(doc.get("components", {}), "#/components")


def _is_schema(node: dict[str, Any]) -> bool:
    return isinstance(node.get("examples"), list) or (
        "example" in node and any(k in node for k in ("type", "$ref", "oneOf", "anyOf", "allOf", "properties")))


def _invalid(doc: dict[str, Any], schema: Any, example: Any) -> list[str]:
    # Validate against a root that carries the document's components, so `#/components/...` refs resolve.
    root = {"$ref": "#/x-target", "x-target": schema, "components": doc.get("components", {})}
    try:
        validator = Draft202012Validator(root, format_checker=FormatChecker())
        errors = validator.iter_errors(example)
        return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]
    except SchemaError as exc:  # pragma: no cover - a broken schema is reported as such
        return [f"schema is invalid: {exc.message}"]
