"""The published OpenAPI documents: complete, valid, governed as the gateway enforces, stable."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from openapi_spec_validator import validate

from gateway.app import Gateway, create_gateway
from gateway.openapi import build_documents, render, write_published
from gateway.settings import load_settings
from policies.bindings import Bindings, Deprecation, load_bindings, required_scopes

METHODS = {"get", "put", "post", "patch", "delete"}
SYSTEM_PREFIXES = {"system.crm.v1": "/system/crm/v1/", "system.erp.v1": "/system/erp/v1/",
                   "system.psa.v1": "/system/psa/v1/", "process.provisioning.v1": "/process/provisioning/v1/"}


def _gateway(home: Path, bindings: Bindings | None = None) -> Gateway:
    return create_gateway(load_settings(env={}, home=str(home), seed_demo=False), bindings=bindings)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    return _gateway(tmp_path_factory.mktemp("openapi"))


@pytest.fixture(scope="module")
def documents(gateway: Gateway) -> dict[str, dict[str, Any]]:
    return build_documents(gateway)


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()
            if method in METHODS]


def _response(doc: dict[str, Any], op: dict[str, Any], status: int) -> dict[str, Any] | None:
    response = op["responses"].get(str(status))
    if response is not None and "$ref" in response:
        response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    return response


def _is_problem(doc: dict[str, Any], response: dict[str, Any] | None) -> bool:
    if response is None:
        return False
    schema = response.get("content", {}).get("application/problem+json", {}).get("schema", {})
    return schema.get("$ref") == "#/components/schemas/Problem" and "Problem" in doc["components"]["schemas"]


class TestCatalogue:
    def test_one_document_per_api_and_major_version(self, documents: dict[str, dict[str, Any]]) -> None:
        bound = {f"{name}.{api.version}" for name, api in load_bindings().apis.items()}
        assert sorted(documents) == sorted(bound | {"gateway.v1"})  # every bound API once, nothing else
        assert {"system.time.v1", "system.hr.v1", "process.time_to_bill.v1", "experience.workbench.v1"} <= bound

    @pytest.mark.parametrize("key", sorted(SYSTEM_PREFIXES))
    def test_a_document_holds_only_its_own_api(self, documents: dict[str, dict[str, Any]], key: str) -> None:
        paths = list(documents[key]["paths"])
        assert paths
        assert all(p.startswith(SYSTEM_PREFIXES[key]) for p in paths), paths

    def test_gateway_document_is_the_oauth_endpoints(self, documents: dict[str, dict[str, Any]]) -> None:
        assert sorted(documents["gateway.v1"]["paths"]) == [
            "/.well-known/jwks.json", "/.well-known/oauth-authorization-server", "/oauth2/token"]

    def test_info_comes_from_the_bindings(self, documents: dict[str, dict[str, Any]]) -> None:
        binding = load_bindings().apis["system.crm"]
        info = documents["system.crm.v1"]["info"]
        assert (info["title"], info["version"], info["x-owner"], info["x-lifecycle"]) == (
            binding.title, binding.version, binding.owner, binding.lifecycle)
        assert info["description"] == binding.description


class TestValidity:
    @pytest.mark.parametrize("key", [*sorted(SYSTEM_PREFIXES), "gateway.v1"])
    def test_validates_as_openapi_3_1(self, documents: dict[str, dict[str, Any]], key: str) -> None:
        assert documents[key]["openapi"].startswith("3.1")
        validate(documents[key])

    def test_litestar_default_400_schema_is_gone(self, documents: dict[str, dict[str, Any]]) -> None:
        for key, doc in documents.items():
            assert "Validation Exception" not in render(doc), key

    def test_every_schema_reference_resolves(self, documents: dict[str, dict[str, Any]]) -> None:
        for key, doc in documents.items():
            text = render(doc)
            for name in {part.split('"')[0] for part in text.split('"#/components/schemas/')[1:]}:
                assert name in doc["components"]["schemas"], (key, name)

    def test_generation_is_deterministic(self, gateway: Gateway, documents: dict[str, dict[str, Any]]) -> None:
        again = build_documents(gateway)
        assert {k: render(v) for k, v in again.items()} == {k: render(v) for k, v in documents.items()}


class TestGovernedOperations:
    @pytest.mark.parametrize("key", sorted(SYSTEM_PREFIXES))
    def test_operation_has_id_summary_and_the_scopes_the_gateway_enforces(
            self, documents: dict[str, dict[str, Any]], key: str) -> None:
        doc = documents[key]
        api = doc["info"]["x-api"]
        scheme_scopes = doc["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]["scopes"]
        assert doc["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]["tokenUrl"] == (
            "/oauth2/token")
        ids = [op["operationId"] for _, _, op in _operations(doc)]
        assert len(ids) == len(set(ids))
        for _, method, op in _operations(doc):
            assert op["summary"], op["operationId"]
            expected = list(required_scopes(load_bindings(), api, op["operationId"], method))
            assert op["security"] == [{"oauth2": expected}], op["operationId"]
            assert set(expected) <= set(scheme_scopes)

    @pytest.mark.parametrize("key", sorted(SYSTEM_PREFIXES))
    def test_problem_responses_are_documented(self, documents: dict[str, dict[str, Any]], key: str) -> None:
        doc = documents[key]
        for _, _, op in _operations(doc):
            op_id = op["operationId"]
            params = op.get("parameters", [])
            expected = {401, 403, 429}
            if params or "requestBody" in op:
                expected.add(422)
            if "requestBody" in op:
                expected.add(400)
            if any(p["in"] == "path" for p in params):
                expected.add(404)
            if key.startswith("system.") or op_id == "provisioning.startRun":
                expected.add(503)
            if op_id == "provisioning.replayException":
                expected.add(409)
            if op_id == "provisioning.startRun":
                expected.add(404)
            for status in expected:
                assert _is_problem(doc, _response(doc, op, status)), (op_id, status)
            unavailable = _response(doc, op, 503)
            if unavailable is not None:
                assert "Retry-After" in unavailable["headers"], op_id
            assert "Retry-After" in (_response(doc, op, 429) or {})["headers"], op_id
            assert "WWW-Authenticate" in (_response(doc, op, 401) or {})["headers"], op_id

    def test_start_run_documents_idempotency_key_and_its_problems(self, documents: dict[str, dict[str, Any]]) -> None:
        doc = documents["process.provisioning.v1"]
        op = doc["paths"]["/process/provisioning/v1/runs"]["post"]
        assert any(p["in"] == "header" and p["name"].lower() == "idempotency-key" for p in op["parameters"])
        assert set(op["responses"]) >= {"200", "202", "400", "404", "422", "503"}
        assert "409" not in op["responses"]  # a reused key is a 422; nothing answers 409 here


class TestGatewayOperations:
    def test_token_endpoint_documents_rfc6749_errors_and_problems(self, documents: dict[str, dict[str, Any]]) -> None:
        doc = documents["gateway.v1"]
        op = doc["paths"]["/oauth2/token"]["post"]
        assert op["operationId"] and op["summary"]
        assert set(op["responses"]["400"]["content"]) == {"application/json", "application/problem+json"}
        assert op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/TokenError")
        assert op["security"] == [{"clientSecretBasic": []}, {}]

    def test_public_endpoints_need_no_token(self, documents: dict[str, dict[str, Any]]) -> None:
        doc = documents["gateway.v1"]
        assert doc["paths"]["/.well-known/jwks.json"]["get"]["security"] == []  # public, and says so
        assert "oauth2" not in doc["components"]["securitySchemes"]


class TestDeprecation:
    def test_deprecated_api_marks_operations_and_documents_headers(self, tmp_path: Path) -> None:
        bindings = load_bindings()
        psa = msgspec.structs.replace(bindings.apis["system.psa"], lifecycle="deprecated", deprecation=Deprecation(
            since=dt.date(2026, 1, 1), sunset=dt.date(2026, 12, 31), successor="https://example.test/docs/psa/v2"))
        deprecated = msgspec.structs.replace(bindings, apis={**bindings.apis, "system.psa": psa})
        docs = build_documents(_gateway(tmp_path, deprecated))
        doc = docs["system.psa.v1"]
        validate(doc)
        assert doc["info"]["x-lifecycle"] == "deprecated"
        for _, _, op in _operations(doc):
            assert op["deprecated"] is True
            for status in op["responses"]:
                headers = (_response(doc, op, int(status)) or {}).get("headers", {})
                assert {"Deprecation", "Sunset", "Link"} <= set(headers), (op["operationId"], status)
        assert all(op["deprecated"] is False for _, _, op in _operations(docs["system.crm.v1"]))


class TestWritePublished:
    def test_writes_then_reports_drift_and_stale_files(self, gateway: Gateway, tmp_path: Path) -> None:
        written = write_published(gateway, tmp_path)
        assert written == sorted(p.stem for p in tmp_path.glob("*.json"))
        assert write_published(gateway, tmp_path, check=True) == []
        crm = tmp_path / "system.crm.v1.json"
        doc = json.loads(crm.read_text())
        doc["info"]["title"] = "edited by hand"
        crm.write_text(json.dumps(doc))
        (tmp_path / "system.old.v0.json").write_text("{}")
        assert write_published(gateway, tmp_path, check=True) == ["system.crm.v1", "system.old.v0"]
        assert crm.read_text() != render(build_documents(gateway)["system.crm.v1"])
        assert write_published(gateway, tmp_path) == ["system.crm.v1", "system.old.v0"]
        assert not (tmp_path / "system.old.v0.json").exists()
        assert write_published(gateway, tmp_path, check=True) == []
