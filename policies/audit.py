"""Audit: every write on a governed API is recorded in the audit trail, with how it ended.

Runs on unsafe methods (POST, PUT, PATCH, DELETE) of the APIs of the configured layers
and records, once the answer is known: who (the client, and the person when the console
acted for one), the operation, the records (identifiers from the path, the request and
the response), the legal entity when the request or the answer names one, the
correlation id, the status and the problem code. A write the gateway refused (403 for a
missing scope, 422, 429, 409...) is recorded as well, with its outcome; a request without
a verified principal (401) is not — it names nobody, and recording it would let anyone
fill the table.

It is the innermost wrapper (lowest `order`), so it sees the handler's own answer; a
refusal by another policy, or an idempotent replay, never reaches it and is recorded
from the response phase instead. A handler that writes its own, richer audit event in
the transaction of the change (the workbench: route opt `audit: "handler"`) is left to
do so when it succeeds; its refusals are still recorded here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import parse_qs

import msgspec
from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.utils.empty import value_or_default
from litestar.utils.scope.state import ScopeState
from msgspec import Meta

from contracts.problems import ProblemError
from foundation.audit import AuditLog, Via, person_of
from policies.base import Policy, RequestContext
from policies.registry import PolicyBuild, PolicyFactory

__all__ = ["FACTORY", "HANDLER_AUDITED", "Audit", "AuditConfig"]

log = logging.getLogger("psconnect.audit")

HANDLER_AUDITED = "handler"
"""Route opt `audit` of handlers that record their own successful outcome."""
_SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_ACTIONS = {"POST": "create", "PUT": "upsert", "PATCH": "update", "DELETE": "delete"}
_ENTITY_KEYS = ("legal_entity_code", "legal_entity", "legal_entity_id")
_MAX_IDS = 50
_STARTED = "audit.started"
Layer = Literal["system", "process", "experience"]


class AuditConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which APIs' writes are recorded, and how much of a body is read for record ids."""

    layers: Annotated[tuple[Layer, ...], Meta(description=(
        "Layers whose APIs' writes are recorded."))] = ("system", "process", "experience")
    max_body_bytes: Annotated[int, Meta(ge=0, le=1 << 22, description=(
        "Largest request or response body searched for record ids and the legal entity, bytes."))] = 256 * 1024


class Audit(Policy[AuditConfig]):
    name: ClassVar[str] = "audit"
    order: ClassVar[int] = 100  # innermost: sees the handler's answer; other policies' refusals via on_response

    def __init__(self, config: AuditConfig, trail: AuditLog) -> None:
        super().__init__(config)
        self.trail = trail

    def wrap(self, ctx: RequestContext, app: ASGIApp) -> ASGIApp:
        if ctx.route.method in _SAFE:
            return app
        return _Tap(self, ctx, app)

    async def on_response(self, ctx: RequestContext, status: int, headers: MutableScopeHeaders) -> None:
        if ctx.route.method in _SAFE or ctx.state.get(_STARTED):
            return  # a safe request, or the tap records it once its body is complete
        problem = ctx.state.get("problem")
        code = problem.problem.code if isinstance(problem, ProblemError) else None
        replayed = headers.get("idempotent-replayed") == "true"
        self.record(ctx, status, code, request_body=b"", response_body=b"",
                    changes={"idempotent_replay": (None, "true")} if replayed else {})

    def record(self, ctx: RequestContext, status: int, problem_code: str | None, *, request_body: bytes,
               response_body: bytes, changes: Mapping[str, tuple[str | None, str | None]] | None = None) -> None:
        event = self._event(ctx, status, problem_code, request_body, response_body, changes)
        if event is None:
            return
        try:
            self.trail.append(*event[0], **event[1])
        except Exception:  # the answer is already on its way; losing the event must at least be loud
            self._not_recorded(ctx, status)

    async def record_soon(self, ctx: RequestContext, status: int, *, request_body: bytes,
                          response_body: bytes) -> None:
        """`record`, committed off the event loop with the other events waiting for the writer
        (`AuditLog.append_soon`)."""
        event = self._event(ctx, status, None, request_body, response_body, None)
        if event is None:
            return
        try:
            await self.trail.append_soon(*event[0], **event[1])
        except Exception:
            self._not_recorded(ctx, status)

    def _not_recorded(self, ctx: RequestContext, status: int) -> None:
        log.exception("audit event not recorded", extra={"fields": {
            "event": "audit_not_recorded", "operation_id": ctx.route.operation_id, "status": status,
            "correlation_id": ctx.correlation_id}})

    def _event(self, ctx: RequestContext, status: int, problem_code: str | None, request_body: bytes,
               response_body: bytes, changes: Mapping[str, tuple[str | None, str | None]] | None,
               ) -> tuple[tuple[str, str, str, str], dict[str, Any]] | None:
        """The `AuditLog.append` arguments of this outcome, or None when it is not recorded here."""
        principal = ctx.principal
        if principal is None:
            return None
        handler = ctx.request.scope.get("route_handler")
        if status < 400 and getattr(handler, "opt", {}).get("audit") == HANDLER_AUDITED:
            return None
        params = {k: str(v) for k, v in ctx.request.scope.get("path_params", {}).items()}
        request, response = _json(request_body), _json(response_body)
        if problem_code is None and status >= 400 and isinstance(response, dict):
            code = response.get("code")
            problem_code = code if isinstance(code, str) else None
        records: dict[str, set[str]] = {f"path.{k}": {v} for k, v in params.items()}
        for prefix, doc in (("request", request), ("response", response if status < 400 else None)):
            for key, ids in _ids(doc).items():
                records.setdefault(f"{prefix}.{key}", set()).update(ids)
        entity_type, entity_id, action = _target(ctx.route.path, ctx.route.method, params, response)
        legal_entity = _legal_entity(request, response, ctx.request.scope.get("query_string", b""))
        person = person_of(principal, ctx.request.headers.get("x-on-behalf-of"))
        actor = f"{person} via {principal.subject}" if person else principal.subject
        return (actor, entity_type, entity_id, action), {
            "changes": dict(changes or {}), "status": status, "problem_code": problem_code,
            "legal_entity": legal_entity, "records": records, "via": _via(ctx, person)}


class _Tap:
    """Passes the request and the answer through, keeping their bodies, and records before the last chunk."""

    def __init__(self, policy: Audit, ctx: RequestContext, app: ASGIApp) -> None:
        self.policy, self.ctx, self.app = policy, ctx, app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.ctx.state[_STARTED] = True
        limit = self.policy.config.max_body_bytes
        sent: list[bytes] = []
        received: list[bytes] = []
        status = 500
        recorded = False

        async def tapped_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request" and sum(map(len, received)) <= limit:
                received.append(message.get("body", b""))
            return message

        async def tapped_send(message: Message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                if sum(map(len, sent)) <= limit:
                    sent.append(message.get("body", b""))
                if not message.get("more_body", False) and not recorded:
                    recorded = True  # committed before the answer's last byte leaves, with the others waiting
                    request_body, response_body = self._bodies(scope, received, sent)
                    await self.policy.record_soon(self.ctx, status, request_body=request_body,
                                                  response_body=response_body)
            await send(message)

        try:
            await self.app(scope, tapped_receive, tapped_send)
        finally:
            if not recorded:  # no complete answer (the handler crashed before it, the client left)
                self._record(scope, status, received, sent)

    def _record(self, scope: Scope, status: int, received: list[bytes], sent: list[bytes]) -> None:
        request_body, response_body = self._bodies(scope, received, sent)
        self.policy.record(self.ctx, status, None, request_body=request_body, response_body=response_body)

    def _bodies(self, scope: Scope, received: list[bytes], sent: list[bytes]) -> tuple[bytes, bytes]:
        body = b"".join(received)
        if not body:  # a policy (validation, idempotency) or the handler read it before us: the cached copy
            cached = value_or_default(ScopeState.from_scope(scope).body, b"")
            body = cached if isinstance(cached, bytes) else b""
        limit = self.policy.config.max_body_bytes
        response = b"".join(sent)
        return body if len(body) <= limit else b"", response if len(response) <= limit else b""


def _via(ctx: RequestContext, person: str | None) -> Via:
    principal = ctx.principal
    return Via(client_id=principal.client_id if principal else None, person=person, api=ctx.route.api,
               operation_id=ctx.route.operation_id, method=ctx.route.method, path=ctx.route.path[:500],
               correlation_id=ctx.correlation_id or None)


def _json(body: bytes) -> object:
    if not body:
        return None
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None


def _ids(doc: object) -> dict[str, set[str]]:
    """Identifier fields of a JSON object (`id`, `*_id`, `*_ids`), and of its `data` (a CloudEvent's payload)."""
    found: dict[str, set[str]] = {}
    if not isinstance(doc, dict):
        return found
    for scope, obj in (("", doc), ("data.", doc.get("data"))):
        if not isinstance(obj, dict):
            continue
        for key, value in obj.items():
            if not isinstance(key, str) or not (key == "id" or key.endswith(("_id", "_ids"))):
                continue
            values = value if isinstance(value, list) else [value]
            ids = {v[:120] for v in values[:_MAX_IDS] if isinstance(v, str) and v}
            if ids:
                found[scope + key] = ids
    return found


def _target(path: str, method: str, params: Mapping[str, str], response: object) -> tuple[str, str, str]:
    """(entity type, entity id, action) of a write: the record its path names, else the one it created.

    `/…/exceptions/{id}/replay` → ("exception", id, "replay"); `PUT /…/projects/by-external-id/{x}` →
    ("project", x, "upsert"); `POST /…/billing-runs` → ("billing-run", the answer's `id`, "create").
    """
    segments = [s for s in path.split("/") if s]
    values = set(params.values())
    last = max((i for i, s in enumerate(segments) if s in values), default=None)
    if last is None:
        created = response.get("id") if isinstance(response, dict) else None
        return _singular(segments[-1] if segments else ""), created if isinstance(created, str) else "", \
            _ACTIONS.get(method, method.lower())
    before = [s for s in segments[:last] if s not in values and not s.startswith("by-")]
    after = segments[last + 1:]
    action = after[-1] if after else _ACTIONS.get(method, method.lower())
    return _singular(before[-1] if before else ""), segments[last], action


def _singular(segment: str) -> str:
    if segment.endswith("ies"):
        return segment[:-3] + "y"
    return segment[:-1] if segment.endswith("s") and not segment.endswith("ss") else segment


def _legal_entity(request: object, response: object, query: bytes) -> str | None:
    for doc in (request, response):
        for obj in (doc, doc.get("data") if isinstance(doc, dict) else None):
            if isinstance(obj, dict):
                for key in _ENTITY_KEYS:
                    value = obj.get(key)
                    if isinstance(value, str) and value and value != "*":
                        return value[:40]
    for key, values in parse_qs(query.decode("latin-1")).items():
        if key in _ENTITY_KEYS and values and values[0] != "*":
            return values[0][:40]
    return None


def _build(b: PolicyBuild) -> Audit | None:
    trail = b.services.audit
    config: AuditConfig = b.config or AuditConfig()
    if trail is None or b.binding.layer not in config.layers:
        return None
    return Audit(config, trail)


FACTORY = PolicyFactory(name="audit", config=AuditConfig, build=_build)
"""Registered in the entry-point group psconnect.policies; `policies: {audit: …}` configures it."""
