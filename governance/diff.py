"""Breaking-change detection between two versions of a contract: `psconnect contracts diff OLD NEW`.

Severities: `breaking` — an existing client can fail (a removed path, operation, response,
response field or accepted enum value; a new required parameter or request field; a
narrowed type, format or bound on input; a widened type on output; a tightened security
requirement; a changed success status); `warning` — a client might notice (a new success
status, a new enum value in a response, a request field no longer read); `info` — additive.

Every published API is gated: a document with no baseline among the old ones is `info` only
while its `info.x-lifecycle` says `beta`; one that claims `stable` (or `deprecated`) without a
release baseline is `breaking`, since nothing would stop a change that breaks its clients.

Direction matters for schemas: a request schema may only accept more, a response schema may
only promise more. Removing something deprecated is `info` once its sunset date has passed
(the caller passes "today", so verdicts are reproducible) and `breaking` before it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Final

from governance.findings import Finding
from governance.spec import Operation, deref, operations, sunset_of

__all__ = ["RULES", "diff_contracts", "diff_document"]

RULES: Final[dict[str, str]] = {
    "api-removed": "A published API version disappeared.",
    "api-added": "A new API version was published (beta until released).",
    "api-unreleased": "A published API claims to be stable but has no release baseline, so no change to it is gated.",
    "path-removed": "A path disappeared.",
    "operation-removed": "An operation disappeared.",
    "operation-added": "A new operation.",
    "operation-deprecated": "An operation or API was deprecated.",
    "operation-id-changed": "An operationId changed (generated clients rename the method).",
    "response-removed": "A documented response status disappeared.",
    "response-added": "A new documented response status.",
    "parameter-added": "A new parameter (breaking when required).",
    "parameter-removed": "A parameter is no longer documented.",
    "parameter-required": "An optional parameter became required.",
    "request-body-required": "A request body became required.",
    "request-field-added": "A new request field (breaking when required).",
    "request-field-required": "An optional request field became required.",
    "request-field-removed": "A request field is no longer documented.",
    "response-field-removed": "A response field disappeared.",
    "response-field-optional": "A response field is no longer always present.",
    "response-field-added": "A new response field.",
    "enum-value-removed": "An enum value disappeared.",
    "enum-value-added": "A new enum value.",
    "type-changed": "A schema's type changed (narrowed on input or widened on output is breaking).",
    "format-changed": "A schema's format changed.",
    "constraint-changed": "A bound, length or pattern changed.",
    "security-tightened": "An operation needs more scopes or a credential it did not need.",
    "security-loosened": "An operation needs fewer scopes.",
}

_BOUNDS: Final = {  # keyword -> +1 when a larger value accepts more, -1 when a smaller one does
    "maximum": 1, "exclusiveMaximum": 1, "maxLength": 1, "maxItems": 1, "maxProperties": 1,
    "minimum": -1, "exclusiveMinimum": -1, "minLength": -1, "minItems": -1, "minProperties": -1,
}


class _Ctx:
    def __init__(self, key: str, old: dict[str, Any], new: dict[str, Any], today: dt.date) -> None:
        self.key, self.old, self.new, self.today = key, old, new, today
        self.findings: list[Finding] = []

    def add(self, rule: str, severity: str, location: str, message: str) -> None:
        self.findings.append(Finding(rule=rule, severity=severity, document=self.key, location=location,
                                     message=message))

    def removal(self, rule: str, location: str, message: str, node: dict[str, Any] | None) -> None:
        """A removal: breaking, unless the old element was deprecated and its sunset has passed."""
        deprecated = (node is not None and bool(node.get("deprecated"))) or self.old.get("info", {}).get(
            "x-deprecation") is not None
        sunset = sunset_of(self.old, node) if deprecated else None
        if sunset is not None and sunset < self.today:
            self.add(rule, "info", location, f"{message} (deprecated, sunset {sunset.isoformat()} has passed)")
        elif sunset is not None:
            self.add(rule, "breaking", location, f"{message} before its sunset date {sunset.isoformat()}")
        else:
            self.add(rule, "breaking", location, message + (" (deprecated without a sunset date)" if deprecated
                                                            else ""))


def diff_contracts(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]], *,
                   today: dt.date | None = None) -> list[Finding]:
    """Findings for every document in `old` and `new`, paired by key (`system.crm.v1`)."""
    day = today or dt.date.today()
    out: list[Finding] = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            ctx = _Ctx(key, old[key], {}, day)
            ctx.removal("api-removed", "(document)", f"API version {key} is no longer published", None)
            out += ctx.findings
        elif key not in old:
            lifecycle = new[key].get("info", {}).get("x-lifecycle")
            if lifecycle in (None, "beta"):
                out.append(Finding(rule="api-added", severity="info", document=key, location="(document)",
                                   message=f"new API version {key} (lifecycle {lifecycle or 'unstated'})"))
            else:
                out.append(Finding(rule="api-unreleased", severity="breaking", document=key, location="info",
                                   message=f"{key} is published as {lifecycle} but has no release baseline: copy "
                                           "its document to the releases, or mark it `lifecycle: beta`"))
        else:
            out += diff_document(key, old[key], new[key], today=day)
    return out


def diff_document(key: str, old: dict[str, Any], new: dict[str, Any], *, today: dt.date | None = None) -> list[Finding]:
    """Findings between two versions of one document."""
    ctx = _Ctx(key, old, new, today or dt.date.today())
    if old.get("info", {}).get("x-deprecation") is None and new.get("info", {}).get("x-deprecation") is not None:
        sunset = sunset_of(new)
        ctx.add("operation-deprecated", "info", "info",
                f"the API is deprecated{f', sunset {sunset.isoformat()}' if sunset else ' (no sunset date)'}")
    old_ops = {(op.path, op.method): op for op in operations(old)}
    new_ops = {(op.path, op.method): op for op in operations(new)}
    new_paths = {path for path, _ in new_ops}
    for (path, method), op in sorted(old_ops.items()):
        if (path, method) in new_ops:
            _operation(ctx, op, new_ops[(path, method)])
        elif path not in new_paths:
            ctx.removal("path-removed", op.label, "path removed", op.node)
        else:
            ctx.removal("operation-removed", op.label, "operation removed", op.node)
    for (path, method), op in sorted(new_ops.items()):
        if (path, method) not in old_ops:
            ctx.add("operation-added", "info", op.label, f"new operation {op.operation_id or ''}".rstrip())
    return ctx.findings


def _operation(ctx: _Ctx, old: Operation, new: Operation) -> None:
    where = new.label
    if old.operation_id != new.operation_id:
        ctx.add("operation-id-changed", "warning", where,
                f"operationId {old.operation_id} -> {new.operation_id}; generated clients rename the method")
    if not old.node.get("deprecated") and new.node.get("deprecated"):
        sunset = sunset_of(ctx.new, new.node)
        ctx.add("operation-deprecated", "info" if sunset else "warning", where,
                f"deprecated, sunset {sunset.isoformat()}" if sunset else "deprecated without a sunset date")
    _security(ctx, old, new)
    _parameters(ctx, old, new)
    _request_body(ctx, old, new)
    _responses(ctx, old, new)


def _scopes(doc: dict[str, Any], op: Operation) -> list[set[str]] | None:
    """Each alternative requirement as a set of `scheme:scope` names; None when the operation is public."""
    requirements = op.node.get("security", doc.get("security")) or []
    if not requirements or any(not r for r in requirements):
        return None
    return [{f"{name}:{scope}" for name, scopes in r.items() for scope in scopes} | {f"{name}:" for name in r}
            for r in requirements]


def _security(ctx: _Ctx, old: Operation, new: Operation) -> None:
    before, after = _scopes(ctx.old, old), _scopes(ctx.new, new)
    if before is None and after is not None:
        ctx.add("security-tightened", "breaking", new.label, "now requires a credential")
    elif before is not None and after is None:
        ctx.add("security-loosened", "warning", new.label, "no longer requires a credential")
    elif before is not None and after is not None:
        # Tightened when some new alternative is not satisfied by every token that satisfied an old one.
        added = sorted({s for a in after for s in a} - {s for b in before for s in b} - {s for s in set().union(
            *after) if s.endswith(":")})
        removed = sorted({s for b in before for s in b} - {s for a in after for s in a})
        if not any(any(a <= b for b in before) for a in after) or added:
            ctx.add("security-tightened", "breaking", new.label,
                    "requires " + (", ".join(s.split(":", 1)[1] for s in added) or "a different credential"))
        elif removed:
            ctx.add("security-loosened", "info", new.label, "no longer requires " + ", ".join(
                s.split(":", 1)[1] or s for s in removed))


def _parameters(ctx: _Ctx, old: Operation, new: Operation) -> None:
    before = {(p.get("in"), p.get("name")): p for p in old.parameters}
    after = {(p.get("in"), p.get("name")): p for p in new.parameters}
    for key, param in sorted(after.items(), key=str):
        where = f"{new.label} {key[0]} parameter {key[1]}"
        if key not in before:
            if param.get("required"):
                ctx.add("parameter-added", "breaking", where, "new required parameter")
            else:
                ctx.add("parameter-added", "info", where, "new optional parameter")
            continue
        if param.get("required") and not before[key].get("required"):
            ctx.add("parameter-required", "breaking", where, "optional parameter became required")
        _schema(ctx, deref(ctx.old, before[key].get("schema", {})), deref(ctx.new, param.get("schema", {})),
                where, request=True, seen=set())
    for key, param in sorted(before.items(), key=str):
        if key not in after:
            ctx.removal("parameter-removed", f"{new.label} {key[0]} parameter {key[1]}",
                        "parameter removed", param) if param.get("required") else ctx.add(
                "parameter-removed", "warning", f"{new.label} {key[0]} parameter {key[1]}",
                "optional parameter removed; clients sending it may be ignored or rejected")


def _json_schema(doc: dict[str, Any], holder: Any) -> dict[str, Any] | None:
    content = (deref(doc, holder) or {}).get("content", {})
    media = content.get("application/json") or content.get("application/problem+json") or next(
        iter(content.values()), None)
    return None if media is None else deref(doc, media.get("schema", {}))


def _request_body(ctx: _Ctx, old: Operation, new: Operation) -> None:
    before, after = old.node.get("requestBody"), new.node.get("requestBody")
    where = f"{new.label} request body"
    if after is None:
        return
    if before is None:
        required = bool(deref(ctx.new, after).get("required"))
        ctx.add("request-body-required" if required else "request-field-added", "breaking" if required else "info",
                where, "new required request body" if required else "new optional request body")
        return
    if deref(ctx.new, after).get("required") and not deref(ctx.old, before).get("required"):
        ctx.add("request-body-required", "breaking", where, "the request body became required")
    old_schema, new_schema = _json_schema(ctx.old, before), _json_schema(ctx.new, after)
    if old_schema is not None and new_schema is not None:
        _schema(ctx, old_schema, new_schema, where, request=True, seen=set())


def _responses(ctx: _Ctx, old: Operation, new: Operation) -> None:
    before, after = old.node.get("responses", {}), new.node.get("responses", {})
    for status in sorted(before):
        where = f"{new.label} response {status}"
        if status not in after:
            ctx.removal("response-removed", where, "response status removed", old.node)
            continue
        old_schema, new_schema = _json_schema(ctx.old, before[status]), _json_schema(ctx.new, after[status])
        if old_schema is not None and new_schema is not None:
            _schema(ctx, old_schema, new_schema, f"{where} body", request=False, seen=set())
    for status in sorted(set(after) - set(before)):
        success = status.startswith("2")
        ctx.add("response-added", "warning" if success else "info", f"{new.label} response {status}",
                "new success status; clients may not handle it" if success else "new documented error response")


def _types(doc: dict[str, Any], schema: dict[str, Any]) -> set[str] | None:
    """The JSON types a schema admits, or None when it does not say (any)."""
    if "type" in schema:
        t = schema["type"]
        types = set(t) if isinstance(t, list) else {t}
        return types | ({"integer"} if "number" in types else set())
    if "const" in schema:
        return {_json_type(schema["const"])}
    branches = schema.get("oneOf") or schema.get("anyOf")
    if branches:
        out: set[str] = set()
        for branch in branches:
            sub = _types(doc, deref(doc, branch))
            if sub is None:
                return None
            out |= sub
        return out
    return None


def _fmt(types: set[str] | None) -> str:
    return "any" if types is None else "|".join(sorted(types))


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null", list: "array",
            dict: "object"}.get(type(value), "object")


def _schema(ctx: _Ctx, old: dict[str, Any], new: dict[str, Any], where: str, *, request: bool,
            seen: set[tuple[int, int]]) -> None:
    """Compare two schemas; on input (request) narrowing breaks, on output (response) widening breaks."""
    old, new = deref(ctx.old, old), deref(ctx.new, new)
    if not isinstance(old, dict) or not isinstance(new, dict) or (id(old), id(new)) in seen:
        return
    seen = seen | {(id(old), id(new))}
    t_old, t_new = _types(ctx.old, old), _types(ctx.new, new)
    if t_old != t_new:
        narrowed = t_old is None or (t_new is not None and not t_old <= t_new)
        widened = t_new is None or (t_old is not None and not t_new <= t_old)
        breaking = narrowed if request else widened
        ctx.add("type-changed", "breaking" if breaking else "info", where, f"type {_fmt(t_old)} -> {_fmt(t_new)}")
    if old.get("format") != new.get("format"):
        loosened = new.get("format") is None
        ctx.add("format-changed", "breaking" if not (loosened and request) else "info", where,
                f"format {old.get('format') or '(none)'} -> {new.get('format') or '(none)'}")
    _constraints(ctx, old, new, where, request)
    _enum(ctx, old, new, where, request)
    _properties(ctx, old, new, where, request, seen)
    if isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
        _schema(ctx, old["items"], new["items"], f"{where}[]", request=request, seen=seen)
    for key in ("oneOf", "anyOf"):
        a, b = _branches(ctx.old, old.get(key)), _branches(ctx.new, new.get(key))
        for name in sorted(set(a) & set(b)):
            _schema(ctx, a[name], b[name], where, request=request, seen=seen)


def _branches(doc: dict[str, Any], branches: Any) -> dict[str, dict[str, Any]]:
    """Non-null union branches by a stable name ($ref target or type), so they pair across versions."""
    out: dict[str, dict[str, Any]] = {}
    for i, branch in enumerate(branches or []):
        name = branch.get("$ref") or json.dumps(branch.get("type", i))
        if branch.get("type") != "null":
            out[str(name)] = branch
    return out


def _constraints(ctx: _Ctx, old: dict[str, Any], new: dict[str, Any], where: str, request: bool) -> None:
    for keyword, direction in _BOUNDS.items():
        a, b = old.get(keyword), new.get(keyword)
        if a == b:
            continue
        if a is None:
            tighter = True
        elif b is None:
            tighter = False
        else:
            tighter = (b - a) * direction < 0
        severity = ("breaking" if tighter else "info") if request else ("info" if tighter else "warning")
        ctx.add("constraint-changed", severity, where, f"{keyword} {a} -> {b}")
    if old.get("pattern") != new.get("pattern"):
        severity = ("breaking" if new.get("pattern") else "info") if request else "warning"
        ctx.add("constraint-changed", severity, where, f"pattern {old.get('pattern')} -> {new.get('pattern')}")
    if request and old.get("additionalProperties") is not False and new.get("additionalProperties") is False:
        ctx.add("constraint-changed", "breaking", where, "no longer accepts unknown properties")


def _enum(ctx: _Ctx, old: dict[str, Any], new: dict[str, Any], where: str, request: bool) -> None:
    a, b = old.get("enum"), new.get("enum")
    if a is None and b is None:
        return
    if a is not None and b is not None:
        for value in [v for v in a if v not in b]:
            ctx.add("enum-value-removed", "breaking" if request else "warning", where, f"enum value {value!r} removed")
        for value in [v for v in b if v not in a]:
            ctx.add("enum-value-added", "info" if request else "warning", where, f"enum value {value!r} added")
    elif b is not None:
        ctx.add("enum-value-removed", "breaking" if request else "info", where, f"now restricted to {b}")
    else:
        ctx.add("enum-value-added", "info" if request else "warning", where, "no longer restricted to an enum")


def _properties(ctx: _Ctx, old: dict[str, Any], new: dict[str, Any], where: str, request: bool,
                seen: set[tuple[int, int]]) -> None:
    a, b = old.get("properties") or {}, new.get("properties") or {}
    req_a, req_b = set(old.get("required") or []), set(new.get("required") or [])
    for name in sorted(set(a) | set(b)):
        at = f"{where}.{name}"
        if name not in b:
            if request:
                ctx.add("request-field-removed", "breaking" if name in req_a else "warning", at,
                        "required request field removed" if name in req_a else "request field no longer read")
            else:
                ctx.removal("response-field-removed", at, "response field removed", a[name] if isinstance(
                    a[name], dict) else None)
        elif name not in a:
            if request:
                required = name in req_b
                ctx.add("request-field-added", "breaking" if required else "info", at,
                        "new required request field" if required else "new optional request field")
            else:
                ctx.add("response-field-added", "info", at, "new response field")
        else:
            if request and name in req_b and name not in req_a:
                ctx.add("request-field-required", "breaking", at, "request field became required")
            if not request and name in req_a and name not in req_b:
                ctx.add("response-field-optional", "breaking", at, "response field is no longer always present")
            _schema(ctx, a[name], b[name], at, request=request, seen=seen)
