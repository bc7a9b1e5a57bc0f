"""`psconnect contracts diff`: a battery of contract edits, each with the verdict a client would expect."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from gateway.openapi import PUBLISHED_DIR
from governance.diff import diff_contracts, diff_document

CRM = "system.crm.v1"
LIST = "/system/crm/v1/accounts"
GET = "/system/crm/v1/accounts/{account_id}"
UPSERT = "/system/crm/v1/accounts/by-external-id/{external_id}"
OPPS = "/system/crm/v1/opportunities"
TODAY = dt.date(2026, 6, 1)
Edit = Callable[[dict[str, Any]], object]


def _op(doc: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    op: dict[str, Any] = doc["paths"][path][method]
    return op


def _schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = doc["components"]["schemas"][name]
    return schema


def _param(doc: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    return next(p for p in _op(doc, path)["parameters"] if p["name"] == name)


def _deprecate(path: str, sunset: str) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        _op(doc, path)["deprecated"] = True
        _op(doc, path)["x-sunset"] = sunset
    return edit


def _remove_after(prepare: Edit, path: str) -> tuple[Edit, Edit]:
    return prepare, lambda d: d["paths"].pop(path)


# (name, edit of the new version, expected rule, expected severity); the old version is the published one.
BATTERY: list[tuple[str, Edit, str, str]] = [
    ("remove path", lambda d: d["paths"].pop(GET), "path-removed", "breaking"),
    ("remove operation", lambda d: d["paths"][UPSERT].pop("put") and d["paths"][UPSERT].update(
        get=_op(d, GET)), "operation-removed", "breaking"),
    ("remove response status", lambda d: _op(d, GET)["responses"].pop("404"), "response-removed", "breaking"),
    ("change success status", lambda d: _op(d, UPSERT, "put")["responses"].update(
        {"202": _op(d, UPSERT, "put")["responses"].pop("201")}), "response-removed", "breaking"),
    ("new success status", lambda d: _op(d, GET)["responses"].update(
        {"203": _op(d, GET)["responses"]["200"]}), "response-added", "warning"),
    ("new error response", lambda d: _op(d, GET)["responses"].update(
        {"409": {"description": "conflict"}}), "response-added", "info"),
    ("new required query parameter", lambda d: _op(d, LIST)["parameters"].append(
        {"in": "query", "name": "region", "required": True, "schema": {"type": "string"}}),
     "parameter-added", "breaking"),
    ("new optional query parameter", lambda d: _op(d, LIST)["parameters"].append(
        {"in": "query", "name": "region", "required": False, "schema": {"type": "string"}}),
     "parameter-added", "info"),
    ("optional parameter made required", lambda d: _param(d, LIST, "cursor").update(required=True),
     "parameter-required", "breaking"),
    ("parameter bound narrowed", lambda d: _param(d, LIST, "limit")["schema"].update(maximum=100),
     "constraint-changed", "breaking"),
    ("parameter bound widened", lambda d: _param(d, LIST, "limit")["schema"].update(maximum=500),
     "constraint-changed", "info"),
    ("parameter type narrowed", lambda d: _param(d, LIST, "limit")["schema"].update(type="boolean"),
     "type-changed", "breaking"),
    ("new required request field", lambda d: _schema(d, "AccountUpsert")["required"].append("industry"),
     "request-field-required", "breaking"),
    ("brand-new required request field", lambda d: (
        _schema(d, "AccountUpsert")["properties"].update(segment={"type": "string"}),
        _schema(d, "AccountUpsert")["required"].append("segment")), "request-field-added", "breaking"),
    ("new optional request field", lambda d: _schema(d, "AccountUpsert")["properties"].update(
        segment={"type": "string"}), "request-field-added", "info"),
    ("request format narrowed", lambda d: _schema(d, "AccountUpsert")["properties"]["name"].update(
        format="email"), "format-changed", "breaking"),
    ("request pattern added", lambda d: _schema(d, "AccountUpsert")["properties"]["name"].update(
        pattern="^[A-Z]"), "constraint-changed", "breaking"),
    ("request max length shortened", lambda d: _schema(d, "AccountUpsert")["properties"]["name"].update(
        maxLength=3), "constraint-changed", "breaking"),
    ("removed response field", lambda d: _schema(d, "Account")["properties"].pop("tax_id"),
     "response-field-removed", "breaking"),
    ("response field made optional", lambda d: _schema(d, "Account")["required"].remove("name"),
     "response-field-optional", "breaking"),
    ("new response field", lambda d: _schema(d, "Account")["properties"].update(segment={"type": "string"}),
     "response-field-added", "info"),
    ("response type widened", lambda d: _schema(d, "Account")["properties"].update(name={"type": ["string",
                                                                                               "null"]}),
     "type-changed", "breaking"),
    ("removed request enum value", lambda d: _param(d, OPPS, "stage")["schema"]["enum"].remove("proposal"),
     "enum-value-removed", "breaking"),
    ("new request enum value", lambda d: _param(d, OPPS, "stage")["schema"]["enum"].append("lost"),
     "enum-value-added", "info"),
    ("added scope", lambda d: _op(d, GET)["security"][0]["oauth2"].append("system.crm:write"),
     "security-tightened", "breaking"),
    ("deprecated with sunset", _deprecate(GET, "2026-12-31"), "operation-deprecated", "info"),
    ("deprecated without sunset", lambda d: _op(d, GET).update(deprecated=True), "operation-deprecated", "warning"),
    ("operationId renamed", lambda d: _op(d, GET).update(operationId="crm.readAccount"), "operation-id-changed",
     "warning"),
    ("new operation", lambda d: d["paths"][GET].update(delete={"operationId": "crm.deleteAccount",
                                                               "responses": {"204": {"description": "gone"}}}),
     "operation-added", "info"),
]


@pytest.mark.parametrize(("edit", "rule", "severity"), [b[1:] for b in BATTERY], ids=[b[0] for b in BATTERY])
def test_battery(published: dict[str, dict[str, Any]], crm: dict[str, Any], edit: Edit, rule: str,
                 severity: str) -> None:
    old = json.loads(json.dumps(crm))
    edit(crm)
    findings = diff_document(CRM, old, crm, today=TODAY)
    assert (rule, severity) in {(f.rule, f.severity) for f in findings}, findings
    if severity != "breaking":
        assert not [f for f in findings if f.severity == "breaking"], findings


def test_enum_value_in_the_stage_filter_is_an_enum(crm: dict[str, Any]) -> None:
    # The battery above edits `stage`'s enum; make sure the published contract still has one to edit.
    assert "proposal" in _param(crm, OPPS, "stage")["schema"]["enum"]


def test_identical_contracts_have_no_findings(published: dict[str, dict[str, Any]]) -> None:
    assert diff_contracts(published, json.loads(json.dumps(published)), today=TODAY) == []


@pytest.mark.parametrize(("today", "severity"), [(dt.date(2026, 12, 1), "breaking"), (dt.date(2027, 1, 1), "info")])
def test_removing_a_deprecated_operation_is_allowed_only_after_its_sunset(crm: dict[str, Any], today: dt.date,
                                                                          severity: str) -> None:
    _deprecate(GET, "2026-12-31")(crm)
    old = json.loads(json.dumps(crm))
    crm["paths"].pop(GET)
    [finding] = diff_document(CRM, old, crm, today=today)
    assert (finding.rule, finding.severity) == ("path-removed", severity)
    assert "2026-12-31" in finding.message


def test_sunset_from_a_documented_sunset_header(crm: dict[str, Any]) -> None:
    _op(crm, GET)["deprecated"] = True
    _op(crm, GET)["responses"]["200"]["headers"] = {"Sunset": {"schema": {"type": "string"},
                                                               "example": "Thu, 31 Dec 2026 00:00:00 GMT"}}
    old = json.loads(json.dumps(crm))
    crm["paths"].pop(GET)
    assert [f.severity for f in diff_document(CRM, old, crm, today=dt.date(2027, 1, 2))] == ["info"]


def test_removed_api_version_is_breaking(published: dict[str, dict[str, Any]]) -> None:
    new = dict(published)
    new.pop(CRM)
    assert [(f.rule, f.severity) for f in diff_contracts(published, new, today=TODAY)] == [("api-removed",
                                                                                            "breaking")]


def test_published_contracts_do_not_break_the_last_release(capsys: pytest.CaptureFixture[str]) -> None:
    """What `make test` checks: contracts/openapi against the released baseline in contracts/releases."""
    releases = Path(PUBLISHED_DIR).parent / "releases"
    assert main(["contracts", "diff", str(releases), str(PUBLISHED_DIR), "--fail-on", "breaking"]) == 0, (
        capsys.readouterr().out)


def test_cli_formats_and_exit_codes(tmp_path: Path, crm: dict[str, Any]) -> None:
    from xml.etree import ElementTree as ET

    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    old_dir.mkdir()
    new_dir.mkdir()
    (old_dir / f"{CRM}.json").write_text(json.dumps(crm))
    crm["paths"].pop(GET)
    (new_dir / f"{CRM}.json").write_text(json.dumps(crm))
    out = tmp_path / "diff.json"
    assert main(["contracts", "diff", str(old_dir), str(new_dir), "--format", "json", "-o", str(out)]) == 1
    report = json.loads(out.read_text())
    assert report["passed"] is False
    assert [(f["rule"], f["severity"], f["location"]) for f in report["findings"]] == [
        ("path-removed", "breaking", f"GET {GET}")]
    junit = tmp_path / "diff.xml"
    assert main(["contracts", "diff", str(old_dir), str(new_dir), "--format", "junit", "-o", str(junit)]) == 1
    failed = [c.get("name") for c in ET.parse(junit).getroot().iter("testcase") if c.find("failure") is not None]
    assert failed == ["path-removed"]
    assert main(["contracts", "diff", str(old_dir), str(new_dir), "--fail-on", "none", "-o",
                 str(tmp_path / "x.txt")]) == 0
