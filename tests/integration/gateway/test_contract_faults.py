"""Faults an outside black-box run found where the server and its published contracts disagreed (issue 12).

Each test is one finding, as a client would meet it: a request the contract calls invalid must
be refused with a 422/415 problem, a request it calls valid must be served, and a client that
joins a document's server URL and path literally must reach the operation.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from gateway.openapi import PUBLISHED_DIR
from tests.stack import Stack, running_stack

# Lists whose seeded simulators hold more than one record, so `limit=1` yields a `next_cursor`.
CURSOR_LISTS = ("/system/crm/v1/accounts", "/system/crm/v1/opportunities", "/system/erp/v1/legal-entities",
                "/system/erp/v1/projects", "/system/hr/v1/workers", "/system/hr/v1/cost-centers",
                "/system/psa/v1/projects", "/system/psa/v1/assignments", "/system/psa/v1/rate-cards",
                "/system/time/v1/projects")
PUBLISHED = {file.name: json.loads(file.read_text()) for file in sorted(PUBLISHED_DIR.glob("*.json"))}


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path_factory.mktemp("faults")) as s:
        yield s


def _expand(server: dict[str, Any], **values: str) -> str:
    """A server URL with its variables replaced (by `values`, else their defaults)."""
    variables = server.get("variables", {})
    return re.sub(r"\{([^}]+)\}", lambda m: values.get(m[1], variables[m[1]]["default"]), server["url"])


class TestCursorsAreBoundToTheirList:
    async def test_a_cursor_from_one_list_is_refused_by_every_other(self, stack: Stack) -> None:
        cursors: dict[str, str] = {}
        for path in CURSOR_LISTS:
            page = await stack.http.get(path, params={"limit": 1})
            assert page.status_code == 200, (path, page.text)
            assert page.json()["next_cursor"], path
            cursors[path] = page.json()["next_cursor"]
        accepted = []
        for issuer, cursor in cursors.items():
            own = await stack.http.get(issuer, params={"limit": 1, "cursor": cursor})
            assert own.status_code == 200, (issuer, own.text)
            for other in CURSOR_LISTS:
                if other == issuer:
                    continue
                answer = await stack.http.get(other, params={"limit": 1, "cursor": cursor})
                if answer.status_code != 422:
                    accepted.append(f"{issuer} -> {other}: {answer.status_code}")
                else:
                    assert answer.json()["code"] == "invalid_cursor", answer.text
        assert accepted == [], "cursors accepted by a list that did not issue them:\n" + "\n".join(accepted)


class TestQueryValuesAreTheirDeclaredType:
    @pytest.mark.parametrize("path", ["/system/erp/v1/posted-time", "/system/time/v1/time-entries",
                                      "/system/crm/v1/accounts"])
    @pytest.mark.parametrize("limit", ["1e3", "1e1", "5.0"])
    async def test_a_limit_that_is_not_written_as_an_integer_is_refused(self, stack: Stack, path: str,
                                                                       limit: str) -> None:
        answer = await stack.http.get(path, params={"limit": limit})
        assert answer.status_code == 422, (path, limit, answer.status_code, answer.text[:200])
        assert answer.json()["errors"][0]["pointer"] == "limit"

    async def test_updated_since_must_be_a_date_time(self, stack: Stack) -> None:
        for value in ("0.5", "1700000000", "2026-13-01T00:00:00Z"):
            answer = await stack.http.get("/system/hr/v1/workers", params={"updated_since": value})
            assert answer.status_code == 422, (value, answer.text[:200])
            assert answer.json()["errors"][0]["pointer"] == "updated_since"
        served = await stack.http.get("/system/hr/v1/workers", params={"updated_since": "2020-01-01T00:00:00Z"})
        assert served.status_code == 200, served.text


class TestContentType:
    BODY = b'{"name": "Acme", "billing_address": {}, "currency": "USD"}'

    @pytest.mark.parametrize("content_type", ["application/vnd.evil+json", "application/json;;;==",
                                              "application/merge-patch+json", "application/json; charset=latin-1",
                                              "application/json/x", "text/json"])
    async def test_anything_but_declared_json_is_415(self, stack: Stack, content_type: str) -> None:
        answer = await stack.http.put("/system/crm/v1/accounts/by-external-id/EXT-0415", content=self.BODY,
                                      headers={"Content-Type": content_type})
        assert answer.status_code == 415, (content_type, answer.status_code, answer.text[:200])
        assert answer.headers["content-type"] == "application/problem+json"
        assert stack.sim("crm").count("Account", "EXT-0415") == 0

    @pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                              'Application/JSON;Charset="UTF-8"'])
    async def test_json_with_well_formed_parameters_is_accepted(self, stack: Stack, content_type: str) -> None:
        answer = await stack.http.put("/system/crm/v1/accounts/by-external-id/EXT-0200", content=self.BODY,
                                      headers={"Content-Type": content_type})
        assert answer.status_code in (200, 201), (content_type, answer.text[:200])


class TestOptionsAllow:
    @pytest.mark.parametrize("path", ["/process/provisioning/v1/runs", "/process/worker-sync/v1/runs",
                                      "/process/time-to-bill/v1/billing-runs"])
    async def test_allow_names_every_method_of_the_path(self, stack: Stack, path: str) -> None:
        answer = await stack.http.options(path)
        assert answer.status_code == 204
        assert {m.strip() for m in answer.headers["allow"].split(",")} == {"GET", "OPTIONS", "POST"}


class TestServerUrls:
    async def test_joining_the_served_server_url_and_a_path_literally_reaches_the_operation(
            self, stack: Stack) -> None:
        for name in ("system.crm", "system.hr", "process.provisioning", "experience.workbench"):
            served = (await stack.http.get(f"/apis/{name}/v1/openapi.json")).json()
            server = _expand(served["servers"][0])
            path = next(p for p, item in served["paths"].items() if "{" not in p and "get" in item)
            answer = await stack.http.get(server + path)
            assert answer.status_code == 200, (name, server + path, answer.status_code, answer.text[:200])

    async def test_every_published_server_url_joins_every_path_to_itself(self) -> None:
        for name, document in PUBLISHED.items():
            for server in document["servers"]:
                base = _expand(server, origin="https://gateway.example.com")
                for path in document["paths"]:
                    joined = base + path
                    assert joined == f"https://gateway.example.com{path}", (name, server["url"], joined)
