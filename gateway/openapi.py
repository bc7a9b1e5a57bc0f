"""Published OpenAPI contracts: one OpenAPI 3.1 document per API and major version.

Design. The documents are generated from the gateway's own, already assembled
Litestar app, so a contract can only describe routes that are really served:

1. The app's HTTP routes are grouped by the `api` opt their router carries
   (`system.crm`, `process.provisioning`, ...); routes in the schema without one
   are the gateway's own (the OAuth2 endpoints) and form the `gateway` API.
2. For each API, Litestar's schema generation runs over just that API's routes, in
   a throw-away schema-only app fed through the `ReceiveRoutePlugin` hook — the same
   path Litestar takes for its own `/schema`. Each API thus gets its own component
   registry: a schema's name cannot change because another API added a type with
   the same short name, which keeps the breaking-change diff of one contract quiet
   when a different API changes. Operations of other APIs that share a route
   are dropped and unreferenced components pruned; Litestar's module-qualified
   generic names (`Page_contracts.crm.Account_`) are shortened (`Page_Account`)
   where that stays unambiguous.
3. The bindings (`policies/gateway.yaml`) then add what the code does not say:
   catalog info, the OAuth2 client-credentials scheme and per-operation scopes
   (`required_scopes`, the same function the policy chain enforces), deprecation,
   and the problem+json responses the policies, validation and vendor layer can
   give (rules in `gateway.openapi_problems`). Litestar's default 400 schema (its
   `ValidationException` shape, which the gateway never sends and Spectral flags)
   is replaced.

Documents are rendered with sorted keys and a trailing newline, so generation is
byte-for-byte repeatable and `contracts/openapi/*.json` diffs are reviewable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import msgspec
from litestar import Litestar
from litestar._openapi.schema_generation.examples import ExampleFactory
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.routes import HTTPRoute
from litestar.serialization import encode_json

import contracts
from contracts.common import DECIMAL_PATTERN
from gateway.openapi_problems import PROBLEM_RESPONSES, problem_components, problem_content, problem_statuses
from policies.bindings import Bindings, Deprecation, required_scopes

__all__ = [
    "DEFAULT_ORIGIN",
    "GATEWAY_API",
    "PUBLISHED_DIR",
    "ApiEntry",
    "GatewayLike",
    "build_documents",
    "catalog",
    "generate",
    "render",
    "server_object",
    "write_published",
]

PUBLISHED_DIR: Final = Path(contracts.__file__).resolve().parent / "openapi"
GATEWAY_API: Final = "gateway"
TOKEN_URL: Final = "/oauth2/token"
EXAMPLE_SEED: Final = 10
DEFAULT_ORIGIN: Final = "http://127.0.0.1:8000"
"""Where `psconnect serve` listens by default: the published documents' server URL until a client sets its own."""
_SCHEMAS = "#/components/schemas/"
_LITESTAR_400 = "Validation Exception"
_MODULE_PREFIX = re.compile(r"(?:(?<=_)|^)(?:[a-z][a-z0-9_]*\.)+")


class GatewayLike(Protocol):
    """What generation needs of `gateway.app.Gateway` (kept structural to avoid an import cycle)."""

    @property
    def litestar(self) -> Litestar: ...

    @property
    def bindings(self) -> Bindings: ...


class ApiEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One published API version, as listed in the catalog."""

    name: str
    version: str
    title: str
    layer: str
    owner: str
    lifecycle: str
    description: str
    scopes: tuple[str, ...]
    deprecation: Deprecation | None = None
    backed_by: tuple[str, ...] = ()
    """A system API's vendor accounts and the legal entities each serves (the connections file)."""

    @property
    def key(self) -> str:
        return f"{self.name}.{self.version}"


_GATEWAY_ENTRY: Final = ApiEntry(
    name=GATEWAY_API, version="v1", title="Gateway authorization server", layer="gateway",
    owner="integration-platform", lifecycle="stable", scopes=(),
    description="OAuth2 client-credentials token endpoint, the public keys that sign access tokens (JWKS) and "
                "RFC 8414 authorization server metadata.")


@dataclass(frozen=True)
class _Operation:
    api: str
    path: str
    method: str
    handler: HTTPRouteHandler

    @property
    def operation_id(self) -> str:
        op_id = self.handler.operation_id
        return op_id if isinstance(op_id, str) else self.handler.handler_name


def _operations(app: Litestar) -> Iterator[tuple[HTTPRoute, _Operation]]:
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema():
                continue
            api = str(handler.opt.get("api") or GATEWAY_API)
            for method in sorted(handler.http_methods):
                yield route, _Operation(api, route.path_format or "/", method.lower(), handler)


def catalog(app: Litestar, bindings: Bindings) -> list[ApiEntry]:
    """Every API the app serves in its schema, with the scopes its operations require."""
    scopes: dict[str, set[str]] = {}
    for _, op in _operations(app):
        needed = scopes.setdefault(op.api, set())
        if op.api != GATEWAY_API:
            needed.update(required_scopes(bindings, op.api, op.operation_id, op.method))
    entries = []
    for api, api_scopes in scopes.items():
        if api == GATEWAY_API:
            entries.append(_GATEWAY_ENTRY)
            continue
        b = bindings.apis[api]
        entries.append(ApiEntry(name=api, version=b.version, title=b.title, layer=b.layer, owner=b.owner,
                                lifecycle=b.lifecycle, description=b.description, deprecation=b.deprecation,
                                scopes=tuple(sorted(api_scopes))))
    return sorted(entries, key=lambda e: e.key)


def build_documents(gateway: GatewayLike) -> dict[str, dict[str, Any]]:
    """The published documents of a gateway, keyed `<api>.<version>` (e.g. `system.crm.v1`)."""
    return generate(gateway.litestar, gateway.bindings)


def generate(app: Litestar, bindings: Bindings) -> dict[str, dict[str, Any]]:
    """The documents for any assembled app and its bindings (the docs routes call this on `request.app`)."""
    by_api: dict[str, list[tuple[HTTPRoute, _Operation]]] = {}
    for route, op in _operations(app):
        by_api.setdefault(op.api, []).append((route, op))
    return {entry.key: _document(entry, by_api[entry.name], bindings) for entry in catalog(app, bindings)}


def render(document: dict[str, Any]) -> str:
    """The canonical text of a document: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_published(gateway: GatewayLike, directory: Path = PUBLISHED_DIR, *, check: bool = False) -> list[str]:
    """Write `<directory>/<api>.<version>.json`; return the names that changed (or, with check, that differ).

    A file left over from an API that is no longer served counts as a difference
    and is deleted when writing.
    """
    documents = build_documents(gateway)
    changed: list[str] = []
    for key, document in documents.items():
        path = directory / f"{key}.json"
        text = render(document)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            changed.append(key)
            if not check:
                directory.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    for stale in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        if stale.name.removesuffix(".json") not in documents:
            changed.append(stale.name.removesuffix(".json"))
            if not check:
                stale.unlink()
    return sorted(changed)


def _litestar_schema(entry: ApiEntry, routes: list[HTTPRoute]) -> dict[str, Any]:
    schema_app = Litestar(route_handlers=[], logging_config=None,
                          openapi_config=OpenAPIConfig(title=entry.title, version=entry.version, path="/__schema__"))
    # A `ResponseSpec` generates examples by default (random values). Litestar seeds
    # its example factory only when `create_examples` is on; seed it here too, or the
    # examples would depend on how many documents this process generated before.
    ExampleFactory.seed_random(EXAMPLE_SEED)
    for route in routes:
        for plugin in schema_app.plugins.receive_route:
            plugin.receive_route(route)
    # Through JSON once: examples in the schema may still be Structs; the document is plain data.
    document: dict[str, Any] = msgspec.json.decode(encode_json(schema_app.openapi_schema.to_schema()))
    return document


def _document(entry: ApiEntry, ops: list[tuple[HTTPRoute, _Operation]], bindings: Bindings) -> dict[str, Any]:
    routes = list({id(route): route for route, _ in ops}.values())
    raw = _litestar_schema(entry, routes)
    mine = {(op.path, op.method): op for _, op in ops}
    paths: dict[str, dict[str, Any]] = {}
    for path, item in raw.get("paths", {}).items():
        kept = {method: operation for method, operation in item.items() if (path, method) in mine}
        if kept:
            paths[path] = kept
    governed = entry.name != GATEWAY_API
    used: set[int] = set()
    for path, item in paths.items():
        for method, operation in item.items():
            op = mine[(path, method)]
            _exact_parameters(operation, op.handler)
            for opt, extension in (("refers_to", "x-refers-to"), ("requires_one_of", "x-requires-one-of")):
                if op.handler.opt.get(opt):
                    operation[extension] = list(op.handler.opt[opt])
            _add_problems(operation, entry, op.operation_id, governed, used)
            if governed:
                operation["security"] = [{"oauth2": list(required_scopes(bindings, entry.name, op.operation_id,
                                                                         op.method))}]
            elif "requestBody" in operation:
                operation["security"] = [{"clientSecretBasic": []}, {}]
            else:
                operation["security"] = []  # public on purpose: key discovery and server metadata
            if entry.deprecation is not None:
                operation["deprecated"] = True
                for response in operation["responses"].values():
                    if "$ref" not in response:
                        response.setdefault("headers", {}).update(_deprecation_headers(entry.deprecation))
    # Pruned again below when no operation of this API can answer with a problem.
    schemas = dict(raw.get("components", {}).get("schemas", {})) | problem_components()
    responses = {name: _problem_response(description, headers, entry.deprecation)
                 for status, (name, description, headers) in PROBLEM_RESPONSES.items() if status in used}
    document: dict[str, Any] = {
        "openapi": raw["openapi"],
        "info": _info(entry),
        "servers": [server_object(DEFAULT_ORIGIN)],
        "tags": [{"name": tag, "description": entry.title}
                 for tag in sorted({t for item in paths.values() for o in item.values() for t in o.get("tags", [])})],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": _security_schemes(entry)},
    }
    if responses:
        document["components"]["responses"] = responses
    structs = _request_structs(op.handler for _, op in ops)
    _close_request_schemas(document, {name for name, info in structs.items() if info.forbid_unknown_fields})
    _item_constraints(document, structs)
    return _add_links(_tidy_components(document))


_ZERO_CONSTRAINTS: Final = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum",
                            "min_length": "minLength", "max_length": "maxLength", "min_items": "minItems",
                            "max_items": "maxItems"}


def _exact_parameters(operation: dict[str, Any], handler: HTTPRouteHandler) -> None:
    """Parameters as the server decodes them: bounds of 0 kept, and no JSON `null` a query or header cannot carry.

    Litestar copies a parameter's bound only when it is truthy, so `ge=0` vanished from
    the document while the server refused negative values. And an optional header's
    schema allowed `null`, which on the wire is the four letters `null`: a header is a
    string or absent, so the null branch is dropped and the constraints that sat beside it
    apply to the one type left. (Query parameters keep theirs: clients never send a null
    query value literally, and the released baselines publish it.)
    """
    fields = {}
    for name, field in handler.parsed_fn_signature.parameters.items():
        definition = field.kwarg_definition
        wire = getattr(definition, "query", None) or getattr(definition, "header", None) or name
        fields[str(wire).lower()] = definition
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema")
        if not isinstance(schema, dict) or parameter.get("in") not in ("query", "header"):
            continue
        branches = schema.get("oneOf")
        if (parameter["in"] == "header" and isinstance(branches, list) and {"type": "null"} in branches
                and not parameter.get("required")):
            kept = [b for b in branches if b != {"type": "null"}]
            if len(kept) == 1 and isinstance(kept[0], dict):
                del schema["oneOf"]
                schema.update({k: v for k, v in kept[0].items() if k not in schema})
        definition = fields.get(str(parameter.get("name", "")).lower())
        for attr, key in _ZERO_CONSTRAINTS.items():
            value = getattr(definition, attr, None)
            if value is not None and not isinstance(value, bool) and key not in schema:
                schema[key] = value


def _item_constraints(document: dict[str, Any], structs: dict[str, msgspec.inspect.StructType]) -> None:
    """Constraints on the items of a request Struct's arrays (and declared enums), which Litestar's schema leaves out.

    `entry_ids: list[EntryId]` published `items: {type: string}` although every id must match
    its pattern; msgspec's own schema of the same Struct carries the item's constraints.
    """
    schemas = document.get("components", {}).get("schemas", {})
    for schema in schemas.values():
        info = structs.get(str(schema.get("title", ""))) if isinstance(schema, dict) else None
        if info is None:
            continue
        (own,), components = msgspec.json.schema_components((info.cls,), ref_template=_SCHEMAS + "{name}")
        own = components.get(info.cls.__name__, own)
        for name, prop in (schema.get("properties") or {}).items():
            mine = (own.get("properties") or {}).get(name, {})
            if "enum" in mine and "enum" not in prop:
                prop["enum"] = mine["enum"]  # declared with Meta(extra_json_schema=...), which Litestar ignores
            for ours, theirs in zip(_strings(prop), _strings(mine), strict=False):
                if theirs.get("format") == "decimal" and "pattern" not in ours:
                    ours["pattern"] = DECIMAL_PATTERN  # the text the gateway accepts for a Decimal
            for ours, theirs in zip(_arrays(prop), _arrays(mine), strict=False):
                items = theirs.get("items")
                if isinstance(items, dict) and "$ref" not in items and "anyOf" not in items:
                    ours["items"] = {**items, **ours.get("items", {})}


def _strings(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The string schemas of a property: itself, or its branches (`oneOf`/`anyOf` with null)."""
    branches = [b for key in ("oneOf", "anyOf") for b in node.get(key, []) if isinstance(b, dict)]
    return [b for b in [node, *branches] if b.get("type") == "string"]


def _arrays(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The array schemas of a property: itself, or its branches (`oneOf`/`anyOf` with null)."""
    if node.get("type") == "array":
        return [node]
    branches = [b for key in ("oneOf", "anyOf") for b in node.get(key, []) if isinstance(b, dict)]
    return [b for b in branches if b.get("type") == "array"]


def _request_structs(handlers: Iterator[HTTPRouteHandler]) -> dict[str, msgspec.inspect.StructType]:
    """The Structs reached from request bodies, by name (whether each refuses unknown fields, and its items)."""
    found: dict[str, msgspec.inspect.StructType] = {}
    seen: set[type] = set()

    def walk(info: msgspec.inspect.Type) -> None:
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls in seen:
                return
            seen.add(info.cls)
            found[info.cls.__name__] = info
            for field in info.fields:
                walk(field.type)
        elif isinstance(info, msgspec.inspect.UnionType):
            for member in info.types:
                walk(member)
        elif isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.VarTupleType, msgspec.inspect.SetType,
                               msgspec.inspect.FrozenSetType)):
            walk(info.item_type)
        elif isinstance(info, msgspec.inspect.DictType):
            walk(info.value_type)

    for handler in handlers:
        data = handler.parsed_fn_signature.parameters.get("data")
        if data is not None:
            try:
                walk(msgspec.inspect.type_info(data.annotation))
            except TypeError:
                continue  # not a msgspec type (a raw body): nothing to close
    return found


def _close_request_schemas(document: dict[str, Any], closed: set[str]) -> None:
    """`additionalProperties: false` on every request schema whose Struct refuses unknown fields.

    msgspec answers an unknown field with a 422 (`forbid_unknown_fields=True` on every
    contract Struct) but Litestar's schema leaves objects open, which promised clients that
    extra fields were accepted. Schemas reached from request bodies are closed, so a shared
    one (`Money`) is closed in responses too: the server never sends a field it did not declare.
    """
    schemas = document.get("components", {}).get("schemas", {})
    done: set[int] = set()

    def close(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                close(item)
            return
        if not isinstance(node, dict) or id(node) in done:
            return
        done.add(id(node))
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_SCHEMAS):
            name = ref.removeprefix(_SCHEMAS)
            target = schemas.get(name)
            named = name in closed or (isinstance(target, dict) and target.get("title") in closed)
            if named and isinstance(target, dict) and "properties" in target:
                target["additionalProperties"] = False
            close(target)
            return
        if node.get("type") == "object" and node.get("title") in closed and "properties" in node:
            node["additionalProperties"] = False
        for key in ("properties",):
            for value in (node.get(key) or {}).values():
                close(value)
        for key in ("items", "oneOf", "anyOf", "allOf"):
            close(node.get(key))

    for item in document["paths"].values():
        for operation in item.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                close(media.get("schema"))


def server_object(origin: str) -> dict[str, Any]:
    """The one server of every document: the gateway's origin, with the operations' absolute paths after it.

    Paths are absolute (`/system/crm/v1/accounts`), so the server URL is an origin with no
    path and no trailing slash: a client that joins server URL and path literally, as
    generated clients do (`host + path`), gets `https://gw.example.com/system/crm/v1/accounts`.
    A relative `/` joined that way gave `//system/...`, which names a host called `system`.
    The origin is a variable so one document serves every environment; the gateway's own
    `/apis/.../openapi.json` sets its default to the origin it was asked at.
    """
    return {"url": "{origin}", "x-internal": False,
            "description": "The gateway serving this API, in whichever environment it runs (local, staging or "
                           "production): set `origin` to its scheme, host and port.",
            "variables": {"origin": {"default": origin,
                                     "description": "Scheme, host and port of the gateway, without a trailing "
                                                    f"slash (`{DEFAULT_ORIGIN}` for `psconnect serve`)."}}}


def _add_links(document: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI links from each write to the read of what it answered with (upsert -> get, startRun -> getRun).

    A write whose success body is a schema with an `id`, and a GET with one path parameter
    answering that same schema, are a create/read pair; the link lets clients (and
    schemathesis' stateful phase) read back the record the write returned.
    """
    def success_ref(operation: dict[str, Any], statuses: tuple[str, ...]) -> set[str]:
        return {r.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
                for status, r in operation.get("responses", {}).items() if status in statuses} - {""}

    schemas = document.get("components", {}).get("schemas", {})
    readers: dict[str, tuple[str, str]] = {}
    for item in document["paths"].values():
        get_op = item.get("get")
        params = [p for p in (get_op or {}).get("parameters", []) if p.get("in") == "path"]
        if get_op and len(params) == 1 and get_op.get("operationId"):
            for ref in success_ref(get_op, ("200",)):
                if "id" in schemas.get(ref.removeprefix(_SCHEMAS), {}).get("properties", {}):
                    readers[ref] = (get_op["operationId"], params[0]["name"])
    for item in document["paths"].values():
        for method, operation in item.items():
            if method == "get":
                continue
            for status, response in operation.get("responses", {}).items():
                ref = next(iter(success_ref(operation, (status,))), "") if status.startswith("2") else ""
                if ref in readers:
                    op_id, param = readers[ref]
                    response.setdefault("links", {})[op_id.rsplit(".", 1)[-1]] = {
                        "operationId": op_id, "parameters": {param: "$response.body#/id"},
                        "description": f"Read back the record by the `id` in this response ({op_id}).",
                    }
    return document


def _info(entry: ApiEntry) -> dict[str, Any]:
    info: dict[str, Any] = {
        "title": entry.title, "version": entry.version, "description": entry.description,
        "contact": {"name": entry.owner}, "x-api": entry.name, "x-layer": entry.layer, "x-owner": entry.owner,
        "x-lifecycle": entry.lifecycle,
    }
    if entry.deprecation is not None:
        dep = entry.deprecation
        info["x-deprecation"] = {"since": dep.since.isoformat(), "sunset": dep.sunset.isoformat(),
                                 **({"successor": dep.successor} if dep.successor else {})}
    return info


def _security_schemes(entry: ApiEntry) -> dict[str, Any]:
    if entry.name == GATEWAY_API:
        return {"clientSecretBasic": {
            "type": "http", "scheme": "basic",
            "description": "Client id and secret (`client_secret_basic`); or send both in the form "
                           "(`client_secret_post`)."}}
    return {"oauth2": {
        "type": "oauth2",
        "description": "OAuth2 client credentials: exchange your client id and secret for a bearer access token "
                       f"at `{TOKEN_URL}`, asking for the scopes listed here. Access tokens are short-lived RFC 9068 "
                       "JWTs, issued and validated per RFC8725 (JWT best current practices): an explicit "
                       "asymmetric algorithm allow-list, `typ` at+jwt, and issuer, audience and expiry checks.",
        "flows": {"clientCredentials": {"tokenUrl": TOKEN_URL,
                                        "scopes": {scope: _scope_text(scope, entry) for scope in entry.scopes}}},
    }}


def _scope_text(scope: str, entry: ApiEntry) -> str:
    access = scope.rsplit(":", 1)[-1]
    verb = {"read": "Read", "write": "Create and change", "admin": "Administer"}.get(access, access)
    return f"{verb}: {entry.title}"


def _add_problems(operation: dict[str, Any], entry: ApiEntry, operation_id: str, governed: bool,
                  used: set[int]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    litestar_400 = responses.get("400", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if litestar_400.get("description") == _LITESTAR_400:
        del responses["400"]
    parameters = operation.get("parameters", [])
    statuses = problem_statuses(
        governed=governed, layer=entry.layer, operation_id=operation_id,
        has_input=bool(parameters) or "requestBody" in operation, has_body="requestBody" in operation,
        has_path_params=any(p.get("in") == "path" for p in parameters),
        has_cursor=any(p.get("in") == "query" and p.get("name") == "cursor" for p in parameters),
    )
    for status in statuses:
        existing = responses.get(str(status))
        if existing is None:
            responses[str(status)] = {"$ref": f"#/components/responses/{PROBLEM_RESPONSES[status][0]}"}
            used.add(status)
        else:
            # The handler declared this status with its own body (the token endpoint's
            # RFC 6749 errors); the gateway's problem+json can answer it as well.
            existing.setdefault("content", {}).update(problem_content())


def _problem_response(description: str, headers: dict[str, Any], deprecation: Deprecation | None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": problem_content()}
    all_headers = dict(headers)
    if deprecation is not None:
        all_headers.update(_deprecation_headers(deprecation))
    if all_headers:
        response["headers"] = all_headers
    return response


def _deprecation_headers(dep: Deprecation) -> dict[str, Any]:
    headers: dict[str, Any] = {
        "Deprecation": {"description": f"RFC 9745: deprecated since {dep.since.isoformat()} (`@<epoch seconds>`).",
                        "schema": {"type": "string"}},
        "Sunset": {"description": f"RFC 8594: may be removed after {dep.sunset.isoformat()} (HTTP-date).",
                   "schema": {"type": "string"}},
    }
    if dep.successor:
        headers["Link"] = {"description": f"RFC 8288 `successor-version` link to {dep.successor}.",
                           "schema": {"type": "string"}}
    return headers


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_SCHEMAS):
                yield value.removeprefix(_SCHEMAS)
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _tidy_components(document: dict[str, Any]) -> dict[str, Any]:
    """Drop schemas no kept operation references, then shorten Litestar's generic names."""
    schemas: dict[str, Any] = document["components"]["schemas"]
    reachable: set[str] = set()
    pending = list(_refs({k: v for k, v in document.items() if k != "components"}))
    pending += _refs(document["components"].get("responses", {}))
    while pending:
        name = pending.pop()
        if name not in reachable and name in schemas:
            reachable.add(name)
            pending.extend(_refs(schemas[name]))
    kept = {name: schemas[name] for name in sorted(reachable)}
    short = {name: _MODULE_PREFIX.sub("", name).strip("_") for name in kept}
    clashes = {s for s in short.values() if list(short.values()).count(s) > 1}
    renames = {name: s for name, s in short.items() if s != name and s not in clashes}
    document["components"]["schemas"] = {renames.get(name, name): schema for name, schema in kept.items()}
    if not document["components"]["schemas"]:
        del document["components"]["schemas"]
    return _rename_refs(document, renames) if renames else document


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_SCHEMAS):
                name = value.removeprefix(_SCHEMAS)
                out[key] = _SCHEMAS + renames.get(name, name)
            else:
                out[key] = _rename_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rename_refs(value, renames) for value in node]
    return node
