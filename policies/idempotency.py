"""Idempotency-Key: a retried unsafe request is answered once, never executed twice.

Follows the IETF httpapi Idempotency-Key draft and Stripe's practice:
- the first request with a key claims it (atomically, in the store) and runs;
- a duplicate while it runs gets 409 — it must not run beside the first;
- a later retry gets the stored response (status, the headers that matter, body)
  with `Idempotent-Replayed: true`;
- the same key with a different request (method, path, query or body) is a misuse: 422;
- keys are scoped per consumer (two clients may pick the same key) and expire after
  `ttl_seconds`; a 5xx or a failed request releases the key so a retry runs again.

The process APIs keep their own key tables (defence in depth); this policy answers first.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from typing import Annotated, ClassVar, Literal

import msgspec
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from msgspec import Meta

from contracts.common import IDEMPOTENCY_KEY_PATTERN
from contracts.problems import ProblemError
from policies.base import Policy, RequestContext
from policies.idempotency_stores import IdempotencyStore, Record, StoredResponse, StoreUnavailable
from policies.registry import PolicyFactory

__all__ = ["FACTORY", "REPLAYED_HEADER", "Idempotency", "IdempotencyConfig"]

log = logging.getLogger("psconnect.idempotency")

REPLAYED_HEADER = "Idempotent-Replayed"
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)  # the same pattern every published Idempotency-Key declares
# Representation headers worth replaying; hop-by-hop, date and per-request headers are not.
_REPLAYED = frozenset({b"content-type", b"location", b"etag", b"last-modified", b"content-location",
                       b"content-language"})
_TRANSIENT = frozenset({408, 409, 425, 429})


class IdempotencyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which operations honour Idempotency-Key and how long records live."""

    operations: Annotated[dict[str, Literal["required", "optional"]], Meta(description=(
        "operationId -> whether the header is required (400 without it) or honoured when sent."))] = {}
    ttl_seconds: Annotated[int, Meta(ge=1, le=30 * 86400, description=(
        "How long a finished response is replayed; after that the key may be reused."))] = 86400
    in_flight_seconds: Annotated[int, Meta(ge=1, le=3600, description=(
        "Lock on a running request; a duplicate within it gets 409. Longer than the slowest request."))] = 60
    max_stored_body: Annotated[int, Meta(ge=0, le=1 << 24, description=(
        "Largest response body stored for replay, bytes; a larger response is not recorded."))] = 256 * 1024
    fail_open: Annotated[bool, Meta(description=(
        "When the store is down: true runs the request unprotected, false (default) answers 503."))] = False


class _Claim(msgspec.Struct, frozen=True):
    key: str
    record: Record


class Idempotency(Policy[IdempotencyConfig]):
    name: ClassVar[str] = "idempotency"
    order: ClassVar[int] = 700  # after auth (consumer known), rate limits and validation (body checked)

    def __init__(self, config: IdempotencyConfig, store: IdempotencyStore) -> None:
        super().__init__(config)
        self.store = store

    async def on_request(self, ctx: RequestContext) -> None:
        mode = self.config.operations.get(ctx.route.operation_id)
        if mode is None or ctx.route.method in ("GET", "HEAD", "OPTIONS"):
            return
        key = ctx.request.headers.get("idempotency-key")
        if key is None:
            if mode == "required":
                raise ProblemError(400, "bad-request", "Idempotency-Key required",
                                   "This operation needs an Idempotency-Key header; a retry sends the same key.",
                                   code="idempotency_key_missing")
            return
        if not _KEY.match(key):
            raise ProblemError(400, "bad-request", "Invalid Idempotency-Key",
                               "Idempotency-Key must be 8 to 255 URL-safe characters.", code="idempotency_key_invalid")
        consumer = ctx.principal.client_id if ctx.principal else "anonymous"
        body = await ctx.request.body()
        digest = hashlib.sha256()
        for part in (ctx.route.method.encode(), ctx.request.scope["raw_path"], ctx.request.scope["query_string"]):
            digest.update(part + b"\0")
        digest.update(body)
        record = Record(fingerprint=digest.hexdigest(), owner=secrets.token_hex(12))
        scoped = f"{consumer}:{key}"
        try:
            existing = await self.store.claim(scoped, record, self.config.in_flight_seconds)
        except StoreUnavailable as exc:
            if self.config.fail_open:
                log.warning("idempotency store down; request runs unprotected: %s", exc)
                return
            raise ProblemError(503, "unavailable", "Idempotency store unavailable",
                               "The request was not run; retry with the same Idempotency-Key.",
                               code="idempotency_store_unavailable", headers={"Retry-After": "1"}) from exc
        if existing is None:
            ctx.state["idempotency"] = _Claim(scoped, record)
        elif existing.fingerprint != record.fingerprint:
            raise ProblemError(422, "idempotency-key-reused", "Idempotency key reused",
                               "This Idempotency-Key was used with a different request.",
                               code="idempotency_key_mismatch")
        elif existing.state == "in_flight" or existing.response is None:
            raise ProblemError(409, "conflict", "Request in progress",
                               "A request with this Idempotency-Key is still running; retry shortly.",
                               code="idempotency_in_flight", headers={"Retry-After": "1"})
        else:
            ctx.state["idempotency"] = existing.response

    def wrap(self, ctx: RequestContext, app: ASGIApp) -> ASGIApp:
        state = ctx.state.get("idempotency")
        if isinstance(state, StoredResponse):
            return _Replay(state)
        if isinstance(state, _Claim):
            return _Recorder(self, state, app)
        return app


class _Replay:
    def __init__(self, response: StoredResponse) -> None:
        self.response = response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        r = self.response
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in r.headers]
        headers += [(b"content-length", str(len(r.body)).encode()), (REPLAYED_HEADER.lower().encode(), b"true")]
        await send({"type": "http.response.start", "status": r.status, "headers": headers})
        await send({"type": "http.response.body", "body": r.body, "more_body": False})


class _Recorder:
    """Passes the response through and records it once it is complete."""

    def __init__(self, policy: Idempotency, claim: _Claim, app: ASGIApp) -> None:
        self.policy, self.claim, self.app = policy, claim, app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.policy.config.max_stored_body
        status = 0
        headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []
        size = 0
        finished = False

        async def recording_send(message: Message) -> None:
            nonlocal status, size, finished
            if message["type"] == "http.response.start":
                status = message["status"]
                headers.extend((k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])
                               if k.lower() in _REPLAYED)
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                size += len(chunk)
                if size <= limit:
                    chunks.append(chunk)
                finished = not message.get("more_body", False)
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            await self._settle(status, headers, b"".join(chunks) if size <= limit else None, finished)

    async def _settle(self, status: int, headers: list[tuple[str, str]], body: bytes | None, finished: bool) -> None:
        store, claim = self.policy.store, self.claim
        try:
            if not finished or status >= 500 or status in _TRANSIENT or body is None:
                if finished and body is None:
                    log.warning("response of %d bytes too large to record for idempotent replay",
                                self.policy.config.max_stored_body)
                await store.release(claim.key, claim.record.owner)
                return
            done = Record(fingerprint=claim.record.fingerprint, owner=claim.record.owner, state="done",
                          response=StoredResponse(status=status, headers=headers, body=body))
            if not await store.complete(claim.key, done, self.policy.config.ttl_seconds):
                log.warning("idempotency lock expired before the request finished; response not recorded")
        except StoreUnavailable as exc:
            log.warning("idempotency store down; response not recorded: %s", exc)


FACTORY = PolicyFactory(name="idempotency", shared=True,
                        build=lambda b: Idempotency(b.bindings.idempotency, b.services.idempotency_store))
"""Registered in the entry-point group psconnect.policies; the `idempotency` block configures it."""
