"""`psconnect contracts lint`: the published contracts pass; each house rule catches its defect."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from gateway.openapi import PUBLISHED_DIR
from governance.lint import lint_document
from governance.spec import load_contracts

LIST = "/system/crm/v1/accounts"
CRM = "system.crm.v1"
GET = "/system/crm/v1/accounts/{account_id}"
UPSERT = "/system/crm/v1/accounts/by-external-id/{external_id}"


def test_every_published_contract_lints_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contracts", "lint", str(PUBLISHED_DIR)]) == 0
    assert "no findings" in capsys.readouterr().out


def test_the_released_baseline_lints_clean() -> None:
    releases = Path(PUBLISHED_DIR).parent / "releases"
    documents = load_contracts(releases)
    assert set(documents) >= {"system.crm.v1", "system.erp.v1", "system.psa.v1", "process.provisioning.v1"}
    assert [f for key, doc in documents.items() for f in lint_document(key, doc)] == []


def _op(doc: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    op: dict[str, Any] = doc["paths"][path][method]
    return op


def _set_example(doc: dict[str, Any]) -> None:
    doc["components"]["schemas"]["Money"]["properties"]["currency"]["examples"] = ["usd"]


EDITS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("no operationId", lambda d: _op(d, LIST).pop("operationId"), "operation-id"),
    ("duplicate operationId", lambda d: _op(d, GET).update(operationId="crm.listAccounts"), "operation-id"),
    ("operationId without api prefix", lambda d: _op(d, GET).update(operationId="getAccount"),
     "operation-id-format"),
    ("operationId of another api", lambda d: _op(d, GET).update(operationId="erp.getAccount"),
     "operation-id-format"),
    ("operationId not verbNoun", lambda d: _op(d, GET).update(operationId="crm.get_account"),
     "operation-id-format"),
    ("no summary", lambda d: _op(d, LIST).pop("summary"), "operation-summary"),
    ("no security", lambda d: _op(d, LIST).pop("security"), "operation-security"),
    ("public api operation", lambda d: _op(d, LIST).update(security=[]), "operation-security"),
    ("scope not declared", lambda d: _op(d, LIST).update(security=[{"oauth2": ["system.crm:admin"]}]),
     "operation-security"),
    ("oauth2 without scopes", lambda d: _op(d, LIST).update(security=[{"oauth2": []}]), "operation-security"),
    ("undeclared scheme", lambda d: _op(d, LIST).update(security=[{"apiKey": []}]), "operation-security"),
    ("401 undocumented", lambda d: _op(d, LIST)["responses"].pop("401"), "problem-responses"),
    ("403 undocumented", lambda d: _op(d, GET)["responses"].pop("403"), "problem-responses"),
    ("429 undocumented", lambda d: _op(d, GET)["responses"].pop("429"), "problem-responses"),
    ("422 undocumented", lambda d: _op(d, UPSERT, "put")["responses"].pop("422"), "problem-responses"),
    ("422 not problem+json", lambda d: _op(d, UPSERT, "put")["responses"].update(
        {"422": {"description": "x", "content": {"application/json": {"schema": {"type": "object"}}}}}),
     "problem-responses"),
    ("list without cursor", lambda d: _op(d, LIST).update(
        parameters=[p for p in _op(d, LIST)["parameters"] if p["name"] != "cursor"]), "cursor-pagination"),
    ("list without limit", lambda d: _op(d, LIST).update(
        parameters=[p for p in _op(d, LIST)["parameters"] if p["name"] != "limit"]), "cursor-pagination"),
    ("page without next_cursor", lambda d: d["components"]["schemas"]["Page_Account"]["properties"].pop(
        "next_cursor"), "cursor-pagination"),
    ("bare array list", lambda d: _op(d, LIST)["responses"]["200"]["content"]["application/json"].update(
        schema={"type": "array", "items": {"$ref": "#/components/schemas/Account"}}), "cursor-pagination"),
    ("camelCase path", lambda d: d["paths"].update({"/system/crm/v1/clientAccounts": d["paths"].pop(LIST)}),
     "path-kebab-case"),
    ("camelCase path parameter", lambda d: d["paths"].update(
        {"/system/crm/v1/accounts/{accountId}": d["paths"].pop(GET)}), "path-kebab-case"),
    ("snake schema name", lambda d: d["components"]["schemas"].update(
        account_copy=d["components"]["schemas"]["Account"]), "schema-name-pascal-case"),
    ("camelCase property", lambda d: d["components"]["schemas"]["Account"]["properties"].update(
        taxId={"type": "string"}), "property-snake-case"),
    ("camelCase query parameter", lambda d: _op(d, LIST)["parameters"].append(
        {"in": "query", "name": "pageSize", "schema": {"type": "integer"}}), "property-snake-case"),
    ("invalid schema example", _set_example, "example-valid"),
    ("invalid media example", lambda d: _op(d, LIST)["responses"]["200"]["content"]["application/json"].update(
        example={"items": "not a list"}), "example-valid"),
    ("deprecated without sunset", lambda d: _op(d, LIST).update(deprecated=True), "deprecation-sunset"),
]


@pytest.mark.parametrize(("edit", "rule"), [(e, r) for _, e, r in EDITS], ids=[name for name, _, _ in EDITS])
def test_each_rule_catches_its_defect(crm: dict[str, Any], edit: Callable[[dict[str, Any]], None], rule: str) -> None:
    assert lint_document(CRM, crm) == []
    edit(crm)
    findings = lint_document(CRM, crm)
    assert rule in {f.rule for f in findings}, findings
    assert all(f.document == CRM for f in findings)


def test_deprecated_with_sunset_header_passes(crm: dict[str, Any]) -> None:
    op = _op(crm, LIST)
    op["deprecated"] = True
    op["responses"]["200"]["headers"] = {"Sunset": {"schema": {"type": "string"},
                                                    "example": "Sat, 31 Oct 2026 00:00:00 GMT"}}
    assert lint_document(CRM, crm) == []


def test_cli_exit_code_and_formats(tmp_path: Path, crm: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    import json
    from xml.etree import ElementTree as ET

    _op(crm, LIST).pop("summary")
    bad = tmp_path / f"{CRM}.json"
    bad.write_text(json.dumps(crm))
    assert main(["contracts", "lint", str(bad), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False
    assert [(f["rule"], f["location"]) for f in report["findings"]] == [("operation-summary", f"GET {LIST}")]
    assert main(["contracts", "lint", str(bad), "--format", "junit", "-o", str(tmp_path / "lint.xml")]) == 1
    suite = ET.parse(tmp_path / "lint.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["operation-summary"]
    assert main(["contracts", "lint", str(bad), "--fail-on", "none"]) == 0
