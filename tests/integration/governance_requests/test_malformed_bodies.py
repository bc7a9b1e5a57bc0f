"""A battery of malformed bodies against every governed route of the assembled gateway that takes one.

Every answer must be a 4xx problem+json naming what is wrong — never a 5xx, never a
vendor call. Routes are discovered from the app, so a new write route is covered the
day it is added.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import pytest_asyncio

from tests.stack import Stack, running_stack

JSON = "application/json"
BATTERY: list[tuple[str, bytes, str, int]] = [
    # (case, body, content type, expected status)
    ("wrong types", b'{"name": 12, "opportunity_id": 12, "currency": 5, "billing_address": "x"}', JSON, 422),
    ("missing fields", b"{}", JSON, 422),
    ("array instead of object", b'[{"name": "x"}]', JSON, 422),
    ("json null", b"null", JSON, 422),
    ("scalar", b'"just a string"', JSON, 422),
    ("unknown field only", b'{"surprise": true}', JSON, 422),
    ("empty body", b"", JSON, 400),
    ("truncated json", b'{"name": "x", ', JSON, 400),
    ("not json", b"name=x&currency=USD", JSON, 400),
    ("nan literal", b'{"amount": NaN}', JSON, 400),
    ("huge float", b'{"name": 1e999999}', JSON, 400),
    ("huge integer", b'{"name": ' + b"9" * 5000 + b"}", JSON, 400),
    ("invalid utf-8", b'{"name": "\xff\xfe\xfd"}', JSON, 400),
    ("lone surrogate escape", b'{"name": "\\ud800"}', JSON, 400),
    ("deeply nested", b'{"a":' * 200 + b"1" + b"}" * 200, JSON, 400),
    ("nesting bomb", b"[" * 100_000, JSON, 400),
    ("oversized", b'{"name": "' + b"x" * (2 << 20) + b'"}', JSON, 413),
    ("wrong content type", b'{"name": "x"}', "text/plain", 415),
    ("form content type", b"name=x", "application/x-www-form-urlencoded", 415),
    ("no content type", b'{"name": "x"}', "", 415),
]


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with running_stack(Path(tmp_path_factory.mktemp("malformed"))) as stack:
        yield stack


def body_routes(stack: Stack) -> list[tuple[str, str, bool]]:
    """(method, concrete path, whether `{}` is a valid body) of every governed handler that declares a body."""
    found: list[tuple[str, str, bool]] = []
    for route in stack.gateway.litestar.routes:
        for handler in getattr(route, "route_handlers", []):
            if not handler.opt.get("api") or "data" not in handler.parsed_fn_signature.parameters:
                continue
            path = re.sub(r"\{[^}]+\}", "EXT-0001", route.path)
            try:  # a contract whose fields are all optional accepts an empty object
                msgspec.json.decode(b"{}", type=handler.parsed_fn_signature.parameters["data"].annotation)
                empty_ok = True
            except (msgspec.ValidationError, TypeError):
                empty_ok = False
            found.extend((m, path, empty_ok) for m in sorted(handler.http_methods) if m in ("POST", "PUT", "PATCH"))
    return found


@pytest.fixture(scope="module")
def routes(stack: Stack) -> list[tuple[str, str, bool]]:
    return body_routes(stack)


async def send(stack: Stack, method: str, path: str, body: bytes, content_type: str) -> httpx.Response:
    headers = {"Idempotency-Key": f"battery-{uuid.uuid4()}"}
    if content_type:
        headers["Content-Type"] = content_type
    for _ in range(20):  # the battery outruns the test client's plan; a well-behaved client waits and retries
        response = await stack.http.request(method, path, content=body, headers=headers)
        if response.status_code != 429:
            return response
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
    return response


@pytest.mark.slow
class TestBattery:
    async def test_every_write_route_is_covered(self, routes: list[tuple[str, str, bool]]) -> None:
        paths = {p for _, p, _ in routes}
        assert {"/process/provisioning/v1/runs", "/system/crm/v1/accounts/by-external-id/EXT-0001",
                "/system/erp/v1/customers/by-external-id/EXT-0001",
                "/system/psa/v1/projects/by-external-id/EXT-0001"} <= paths

    @pytest.mark.parametrize(("case", "body", "content_type", "expected"), BATTERY, ids=[c[0] for c in BATTERY])
    async def test_malformed_body_is_a_4xx_problem(self, stack: Stack, routes: list[tuple[str, str, bool]],
                                                   case: str, body: bytes, content_type: str, expected: int) -> None:
        for method, path, empty_ok in routes:
            if case == "missing fields" and empty_ok:
                continue  # every field of this contract is optional: `{}` is a valid request
            response = await send(stack, method, path, body, content_type)
            where = f"{case}: {method} {path} -> {response.status_code} {response.text[:300]}"
            assert response.status_code == expected, where
            assert response.headers["content-type"] == "application/problem+json", where
            problem: dict[str, Any] = response.json()
            assert problem["status"] == expected and problem["title"] and problem["instance"] == path, where

    async def test_no_vendor_was_reached(self, stack: Stack) -> None:
        # after the whole battery, every simulator is as seeded: nothing malformed got through
        for domain, kind in (("crm", "Account"), ("erp", "customer"), ("erp", "job"), ("psa", "workspace")):
            assert stack.sim(domain).count(kind, "EXT-0001") == 0


class TestFieldErrors:
    async def test_wrong_type_points_at_the_nested_field(self, stack: Stack) -> None:
        body = {"name": "Acme", "billing_address": {"city": 5}, "currency": "USD"}
        response = await stack.http.put("/system/crm/v1/accounts/by-external-id/EXT-0002", json=body)
        assert response.status_code == 422
        assert response.json()["errors"] == [{"pointer": "/billing_address/city",
                                              "detail": "Expected `str | null`, got `int`"}]

    async def test_unknown_field_is_named(self, stack: Stack) -> None:
        body = {"name": "Acme", "billing_address": {}, "currency": "USD", "discount": 10}
        response = await stack.http.put("/system/crm/v1/accounts/by-external-id/EXT-0002", json=body)
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/discount"
        assert "unknown field" in response.json()["errors"][0]["detail"]

    async def test_missing_field_is_named(self, stack: Stack) -> None:
        response = await stack.http.post("/process/provisioning/v1/runs", json={},
                                          headers={"Idempotency-Key": f"k-{uuid.uuid4()}"})
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/opportunity_id"

    async def test_oversized_declared_length_is_refused_before_reading(self, stack: Stack) -> None:
        async def never_sent() -> AsyncIterator[bytes]:
            raise AssertionError("the gateway read a body it should have refused by its Content-Length")
            yield b""  # pragma: no cover

        response = await stack.http.put("/system/crm/v1/accounts/by-external-id/EXT-0003", content=never_sent(),
                                        headers={"Content-Type": JSON, "Content-Length": str(50 << 20)})
        assert response.status_code == 413 and response.json()["code"] == "body_too_large"

    async def test_oversized_chunked_body_is_cut_off(self, stack: Stack) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"name": "'
            for _ in range(40):
                yield b"x" * 65536

        response = await stack.http.put("/system/crm/v1/accounts/by-external-id/EXT-0003", content=chunks(),
                                        headers={"Content-Type": JSON})
        assert response.status_code == 413

    async def test_json_with_a_charset_parameter_is_accepted(self, stack: Stack) -> None:
        # An undeclared `+json` type (application/merge-patch+json) is a 415 since issue 12: see
        # tests/integration/gateway/test_contract_faults.py::TestContentType.
        body = b'{"name": "Acme", "billing_address": {}, "currency": "USD"}'
        response = await stack.http.put("/system/crm/v1/accounts/by-external-id/EXT-0004", content=body,
                                        headers={"Content-Type": "application/json; charset=utf-8"})
        assert response.status_code in (200, 201), response.text
        assert stack.sim("crm").count("Account", "EXT-0004") == 1  # the census the battery relies on counts
