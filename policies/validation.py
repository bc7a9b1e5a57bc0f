"""Request validation at the gateway: the checks that must happen before a body is decoded.

Litestar decodes each body once, with msgspec, into the contract's Struct (field-level
errors come out of gateway/errors.py as `errors[]` with JSON pointers). This policy
adds what decoding cannot do safely itself: a size limit enforced while reading
(413, before a huge body is buffered), the content type (415), well-formed UTF-8
(400) and a nesting-depth limit (400, so a `[[[[…` bomb never reaches the decoder).

Optional sampled response validation decodes a share of responses against the
route's declared return type; drift is logged and counted, never sent to the caller.
"""

from __future__ import annotations

import datetime as dt
import logging
import operator
import random
import re
from collections import Counter
from itertools import accumulate, count
from typing import Annotated, Any, ClassVar

import msgspec
from litestar import Request
from litestar.types import (
    ASGIApp,
    HTTPRequestEvent,
    Message,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)
from msgspec import Meta

from contracts.common import DECIMAL_PATTERN
from contracts.problems import FieldError, ProblemError
from policies.base import Policy, RequestContext
from policies.registry import PolicyFactory

__all__ = ["FACTORY", "RequestValidation", "ValidationConfig", "drift_counter"]

log = logging.getLogger("psconnect.validation")

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# A JSON string (unrolled, so the regex engine does not branch per character) — its brackets are text, not structure.
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")  # an opener adds 2, a closer 0: depth after k = sum - k
# RFC 9110 §5.6.2/§5.6.4/§8.3.1: media-type = type "/" subtype *( OWS ";" OWS [ token "=" ( token / quoted-string ) ] )
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e]|\\[\t \x21-\x7e])*"'
_MEDIA_TYPE = re.compile(rf"^({_TOKEN}/{_TOKEN})((?:[ \t]*;[ \t]*(?:{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))?)*)[ \t]*$")
_PARAMETER = re.compile(rf"({_TOKEN})=({_TOKEN}|{_QUOTED})")
drift_counter: Counter[str] = Counter()
"""Response-contract drift per operation id (exported as a metric by the observability layer)."""


class ValidationConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_body_bytes: Annotated[int, Meta(ge=1, le=64 << 20, description="Largest request body accepted; else 413.")] = (
        1 << 20)
    max_depth: Annotated[int, Meta(ge=1, le=512, description="Deepest JSON nesting accepted; else 400.")] = 32
    media_types: Annotated[tuple[str, ...], Meta(description=(
        "Accepted request content types, exactly (a `+json` type such as `application/cloudevents+json` only when "
        "listed), with optional well-formed parameters; else 415."))] = (
        "application/json",)
    response_sample_rate: Annotated[float, Meta(ge=0.0, le=1.0, description=(
        "Share of responses decoded against the declared return type to detect upstream drift."))] = 0.0


def nesting_depth(body: bytes) -> int:
    """Deepest bracket nesting outside JSON strings; cheap enough to run on every body."""
    if body.count(b"[") + body.count(b"{") <= 1:
        return body.count(b"[") + body.count(b"{")
    # Every pass runs in C (split or regex, translate, accumulate): it runs on every internal hop's body too.
    if b"\\" in body:  # escaped quotes: let the regex pair them
        outside = _STRINGS.sub(b"", body)
    else:  # strings are every other segment between quotes; an unterminated one counts as structure, like the regex
        parts = body.split(b'"')
        outside = b"".join(parts[::2]) + (parts[-1] if len(parts) % 2 == 0 else b"")
    steps = outside.translate(None, _NOT_BRACKETS).translate(_STEPS)
    return max(0, max(map(operator.sub, accumulate(steps), count(1)), default=0))


class RequestValidation(Policy[ValidationConfig]):
    name: ClassVar[str] = "validation"
    order: ClassVar[int] = 850  # after auth and rate limits (910): a rejected caller never costs a body read

    def __init__(self, config: ValidationConfig) -> None:
        super().__init__(config)
        self._media = tuple(m.lower() for m in config.media_types)

    async def on_request(self, ctx: RequestContext) -> None:
        _check_query(ctx.request)
        if ctx.route.method not in _BODY_METHODS:
            return
        request = ctx.request
        declared = request.headers.get("content-length")
        limit = self.config.max_body_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        body = await self._read(request, limit)
        if not body and _takes_body(ctx):
            raise ProblemError(400, "bad-request", "Body required", "This operation needs a JSON body.",
                               errors=[FieldError(pointer="", detail="missing body")], code="body_missing")
        if body:
            self._check_media_type(request.headers.get("content-type"))
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ProblemError(400, "bad-request", "Malformed body",
                                   f"The body is not valid UTF-8 (byte {exc.start}).", code="malformed_body") from exc
            if nesting_depth(body) > self.config.max_depth:
                raise ProblemError(400, "bad-request", "Body nested too deeply",
                                   f"JSON nesting deeper than {self.config.max_depth} levels is refused.",
                                   code="body_too_deep")
            _check_body(request, body)
        ctx.request = Request(request.scope, _replaying(body, request.receive))

    def _check_media_type(self, header: str | None) -> None:
        """Exactly a listed media type, with well-formed parameters; JSON is UTF-8 (RFC 8259 §8.1).

        Not any `+json` suffix: `application/vnd.evil+json` names a format this API never
        declared, and `application/json;;;==` is not a media type at all."""
        parsed = _MEDIA_TYPE.match(header or "")
        media = parsed.group(1).lower() if parsed else (header or "").split(";", 1)[0].strip().lower()
        if parsed and media in self._media:
            charsets = [v.strip('"').lower() for k, v in _PARAMETER.findall(parsed.group(2)) if k.lower() == "charset"]
            if all(c == "utf-8" for c in charsets):
                return
        raise ProblemError(415, "unsupported-media-type", "Unsupported media type",
                           f"Send the body as {' or '.join(self._media)}" + (f", not {media}." if media else "."),
                           code="unsupported_media_type", headers={"Accept": ", ".join(self._media)})

    @staticmethod
    async def _read(request: Request[Any, Any, Any], limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await request.receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def wrap(self, ctx: RequestContext, app: ASGIApp) -> ASGIApp:
        rate = self.config.response_sample_rate
        if not rate or random.random() >= rate:
            return app
        handler = ctx.request.scope.get("route_handler")
        return_type = getattr(getattr(handler, "parsed_fn_signature", None), "return_type", None)
        annotation = getattr(return_type, "annotation", None)
        if annotation is None:
            return app
        return _ResponseSampler(app, ctx, annotation)


class _ResponseSampler:
    """Decodes a sampled JSON response against the declared type; reports, never alters, the response."""

    def __init__(self, app: ASGIApp, ctx: RequestContext, annotation: Any) -> None:
        self.app, self.ctx, self.annotation = app, ctx, _unwrap_response(annotation)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        status = 0

        async def sampling_send(message: Message) -> None:
            nonlocal status
            await send(message)
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and 200 <= status < 300:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self._check(b"".join(chunks))

        await self.app(scope, receive, sampling_send)

    def _check(self, body: bytes) -> None:
        if self.annotation is None:
            return
        try:
            msgspec.json.decode(body, type=self.annotation)
        except (msgspec.ValidationError, msgspec.DecodeError, TypeError) as exc:
            drift_counter[self.ctx.route.operation_id] += 1
            log.warning("response contract drift", extra={"fields": {
                "event": "response_contract_drift", "operation_id": self.ctx.route.operation_id,
                "api": self.ctx.route.api, "detail": str(exc)}})


def _unwrap_response(annotation: Any) -> Any:
    """`Response[T]` declares T; anything msgspec cannot decode into is not sampled."""
    args = getattr(annotation, "__args__", None)
    if getattr(annotation, "__origin__", None) is not None and args and "Response" in str(annotation.__origin__):
        annotation = args[0]
    try:
        msgspec.json.Decoder(annotation)
    except (TypeError, ValueError):
        return None
    return annotation


_STRICT_QUERY_TYPES: dict[Any, str] = {int: "an integer in decimal digits", dt.date: "an RFC 3339 full-date",
                                       dt.datetime: "an RFC 3339 date-time"}
_DIGITS = re.compile(r"^-?[0-9]+$")


def _check_query(request: Request[Any, Any, Any]) -> None:
    """Integer, date and date-time query parameters as their published type says, nothing looser.

    Litestar converts query strings with msgspec's lax rules, under which `limit=1e3` and
    `limit=5.0` are integers and `updated_since=0.5` is a date-time (seconds since 1970).
    The contracts declare `type: integer` and `format: date-time`; a value written any
    other way is a 422 on that parameter, on every operation alike."""
    signature = getattr(request.scope.get("route_handler"), "parsed_fn_signature", None)
    if signature is None or not request.scope.get("query_string"):
        return
    path_params = request.scope.get("path_params") or {}
    errors: list[FieldError] = []
    for name, field in signature.parameters.items():
        definition = field.kwarg_definition
        if name in path_params or getattr(definition, "header", None) or getattr(definition, "cookie", None):
            continue
        scalar = field.annotation
        if field.is_optional:
            inner = [t.annotation for t in field.inner_types if t.annotation is not type(None)]
            scalar = inner[0] if len(inner) == 1 else None
        expected = _STRICT_QUERY_TYPES.get(scalar)
        if expected is None:
            continue
        key = getattr(definition, "name", None) or name
        for raw in request.query_params.getall(key, []):
            if not _strictly(raw, scalar):
                errors.append(FieldError(pointer=key, detail=f"Expected {expected}, got {raw[:40]!r}"))
    if errors:
        raise ProblemError(422, "validation-error", "Validation failed",
                           f"Validation failed for {request.method} {request.url.path}", errors=errors,
                           code="validation_failed")


def _strictly(raw: str, scalar: Any) -> bool:
    if scalar is int:
        return bool(_DIGITS.match(raw))
    try:
        msgspec.convert(raw, scalar, strict=True)
    except msgspec.ValidationError:
        return False
    return True


_STRICT_DECODERS: dict[Any, tuple[msgspec.json.Decoder[Any], msgspec.inspect.Type] | None] = {}
_DECIMAL = re.compile(DECIMAL_PATTERN)
_AT = re.compile(r"^(.*) - at `\$((?:\.[^.\[`]+|\[\d+\])*)`$", re.DOTALL)
_NAMED_FIELD = re.compile(r"^Object (?:contains unknown|missing required) field `([^`]+)`")


def _strict_decoder(annotation: Any) -> tuple[msgspec.json.Decoder[Any], msgspec.inspect.Type] | None:
    if annotation not in _STRICT_DECODERS:
        try:
            _STRICT_DECODERS[annotation] = (msgspec.json.Decoder(annotation, strict=True),
                                            msgspec.inspect.type_info(annotation))
        except (TypeError, ValueError):
            _STRICT_DECODERS[annotation] = None  # not a type msgspec decodes: Litestar's own path only
    return _STRICT_DECODERS[annotation]


def _check_body(request: Request[Any, Any, Any], body: bytes) -> None:
    """A JSON body decodes into the operation's contract under msgspec's strict rules, or it is a 422.

    Litestar converts bodies with msgspec's lax rules, under which `{"full": 0}` is a
    boolean and a Money amount sent as the JSON number 12.5 is a Decimal, though the
    contracts declare `type: boolean` and a string amount. The published schema is what a
    body must be; anything looser is refused here with the same problem the decoder gives.
    A body that is not JSON at all is left to Litestar's 400."""
    signature = getattr(request.scope.get("route_handler"), "parsed_fn_signature", None)
    data = signature.parameters.get("data") if signature is not None else None
    strict = _strict_decoder(data.annotation) if data is not None else None
    if strict is None:
        return
    decoder, info = strict
    try:
        raw = msgspec.json.decode(body)  # well-formed first: the typed decoder may stop at a field before the end
    except msgspec.DecodeError:
        return
    try:
        try:
            decoder.decode(body)
        except msgspec.ValidationError:
            # JSON Schema's `integer` is any number with no fraction (1605.0, 1e3): msgspec's strict mode
            # refuses those as floats, Litestar's lax decoding takes them as the ints they are.
            as_ints = msgspec.json.encode(_integral_floats_as_ints(raw))
            if as_ints == msgspec.json.encode(raw):
                raise
            decoder.decode(as_ints)
    except msgspec.ValidationError as exc:
        raise ProblemError(422, "validation-error", "Validation failed",
                           f"Validation failed for {request.method} {request.url.path}",
                           errors=[_body_error(str(exc))], code="validation_failed") from exc
    number = _number_for_decimal(raw, info, "")
    if number is not None:
        raise ProblemError(422, "validation-error", "Validation failed",
                           f"Validation failed for {request.method} {request.url.path}",
                           errors=[FieldError(pointer=number, detail="Expected a decimal as text matching "
                                              f"{DECIMAL_PATTERN}")], code="validation_failed")


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral_floats_as_ints(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    return value


_REACHES_DECIMAL: dict[int, tuple[msgspec.inspect.Type, bool]] = {}


def _children(info: msgspec.inspect.Type) -> tuple[msgspec.inspect.Type, ...]:
    if isinstance(info, msgspec.inspect.Metadata):
        return (info.type,)
    if isinstance(info, msgspec.inspect.StructType):
        return tuple(f.type for f in info.fields)
    if isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.VarTupleType)):
        return (info.item_type,)
    if isinstance(info, msgspec.inspect.DictType):
        return (info.value_type,)
    if isinstance(info, msgspec.inspect.UnionType):
        return tuple(info.types)
    return ()


def _reaches_decimal(info: msgspec.inspect.Type) -> bool:
    """Whether a Decimal can sit anywhere under `info`: the walk below skips every field that cannot hold one,
    which is most of a posting batch's lines (it was 2.3 million calls for 390 bodies in the month-end run).

    Worked out once for the whole graph under `info` (a Struct may refer to itself, so to a fixed point)
    and kept per type-info object, which the strict decoders keep alive."""
    known = _REACHES_DECIMAL.get(id(info))
    if known is not None and known[0] is info:
        return known[1]
    nodes: dict[int, msgspec.inspect.Type] = {}
    stack = [info]
    while stack:
        node = stack.pop()
        if id(node) not in nodes:
            nodes[id(node)] = node
            stack.extend(_children(node))
    reaches = {key: isinstance(node, msgspec.inspect.DecimalType) for key, node in nodes.items()}
    changed = True
    while changed:
        changed = False
        for key, node in nodes.items():
            if not reaches[key] and any(reaches[id(child)] for child in _children(node)):
                reaches[key] = changed = True
    _REACHES_DECIMAL.update({key: (node, reaches[key]) for key, node in nodes.items()})
    return reaches[id(info)]


def _number_for_decimal(value: Any, info: msgspec.inspect.Type, pointer: str) -> str | None:
    """Where a Decimal is not the decimal text the contract publishes (`DECIMAL_PATTERN`): msgspec takes a
    JSON number even when strict, and any string Python's Decimal reads (`NaN`, `1e5`, `1_000`).

    A number is a binary float to most JSON parsers; an amount must travel as the exact
    decimal text the contract declares, so `{"amount": 12.5}` is refused, not rounded."""
    if isinstance(info, msgspec.inspect.Metadata):
        return _number_for_decimal(value, info.type, pointer)
    if isinstance(info, msgspec.inspect.DecimalType):
        if isinstance(value, str):
            return None if _DECIMAL.match(value) else pointer
        return pointer if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if not _reaches_decimal(info):
        return None
    if isinstance(info, msgspec.inspect.StructType) and isinstance(value, dict):
        for field in info.fields:
            if field.encode_name in value and _reaches_decimal(field.type):
                found = _number_for_decimal(value[field.encode_name], field.type, f"{pointer}/{field.encode_name}")
                if found is not None:
                    return found
    elif isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.VarTupleType)) and isinstance(value, list):
        for i, item in enumerate(value):
            found = _number_for_decimal(item, info.item_type, f"{pointer}/{i}")
            if found is not None:
                return found
    elif isinstance(info, msgspec.inspect.DictType) and isinstance(value, dict):
        for key, item in value.items():
            found = _number_for_decimal(item, info.value_type, f"{pointer}/{key}")
            if found is not None:
                return found
    elif isinstance(info, msgspec.inspect.UnionType):
        for member in info.types:
            found = _number_for_decimal(value, member, pointer)
            if found is not None:
                return found
    return None


def _body_error(message: str) -> FieldError:
    """msgspec's `... - at `$.lines[0].amount`` as an RFC 6901 pointer (`/lines/0/amount`), as errors.py does."""
    located = _AT.match(message)
    detail, path = (located.group(1), located.group(2)) if located else (message, "")
    parts = [p for p in re.split(r"\.|\[(\d+)\]", path) if p]
    named = _NAMED_FIELD.match(detail)
    if named:
        parts.append(named.group(1))
    return FieldError(pointer="".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts), detail=detail)


def _takes_body(ctx: RequestContext) -> bool:
    signature = getattr(ctx.request.scope.get("route_handler"), "parsed_fn_signature", None)
    return signature is not None and "data" in signature.parameters


def _too_large(limit: int) -> ProblemError:
    return ProblemError(413, "payload-too-large", "Payload too large",
                        f"The request body exceeds {limit} bytes.", code="body_too_large")


def _replaying(body: bytes, then: Receive) -> Receive:
    """A receive that hands the already-read body to the handler, then the connection's own receive.

    Not a made-up disconnect: a streaming response listens on receive for the client going away,
    and a disconnect reported while the client still waits cut every streamed answer to a request
    with a body short (a proxied download broke off after its first chunk)."""
    sent = False

    async def receive() -> ReceiveMessage:
        nonlocal sent
        if not sent:
            sent = True
            return HTTPRequestEvent(type="http.request", body=body, more_body=False)
        return await then()

    return receive


FACTORY = PolicyFactory(name="validation",
                        build=lambda b: RequestValidation(b.binding.validation or b.bindings.validation))
"""Registered in the entry-point group psconnect.policies; the API's `validation` block, else the global one."""
