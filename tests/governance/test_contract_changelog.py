"""The changelog: generated from the diff, as Markdown and JSON, and served at /apis/{name}/changelog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.main import main
from governance.changelog import changelogs, to_markdown


def test_changelog_groups_changes_by_kind(published: dict[str, dict[str, Any]]) -> None:
    current = json.loads(json.dumps(published))
    crm = current["system.crm.v1"]
    crm["paths"].pop("/system/crm/v1/opportunities/{opportunity_id}")
    crm["components"]["schemas"]["Account"]["properties"]["segment"] = {"type": "string"}
    [log] = changelogs(published, current, api="system.crm")
    assert log.breaking is True
    text = to_markdown([log])
    assert "## system.crm v1 (last release → current)" in text
    breaking, additions = text.split("### Breaking changes")[1].split("### Additions and compatible changes")
    assert "/system/crm/v1/opportunities/{opportunity_id}" in breaking
    assert "segment" in additions


def test_two_majors_are_compared(published: dict[str, dict[str, Any]]) -> None:
    current = json.loads(json.dumps(published))
    current["system.crm.v2"] = json.loads(json.dumps(current["system.crm.v1"]))
    current["system.crm.v2"]["paths"].pop("/system/crm/v1/accounts")
    logs = changelogs(published, current, api="system.crm")
    assert [(log.from_version, log.to_version) for log in logs] == [("v1", "v1"), ("v1", "v2")]
    assert logs[1].breaking and not logs[0].breaking


def test_cli_writes_markdown_and_json(tmp_path: Path) -> None:
    assert main(["contracts", "changelog", "-o", str(tmp_path / "CHANGELOG.md")]) == 0
    assert (tmp_path / "CHANGELOG.md").read_text().startswith("# Contract changelog")
    assert main(["contracts", "changelog", "--format", "json", "--api", "system.erp", "-o",
                 str(tmp_path / "c.json")]) == 0
    assert [log["api"] for log in json.loads((tmp_path / "c.json").read_text())] == ["system.erp"]


@pytest.fixture
def docs_app(tmp_path: Path) -> Any:
    from gateway.app import create_gateway
    from gateway.settings import load_settings

    return create_gateway(load_settings(env={}, home=str(tmp_path), seed_demo=False)).app


async def test_changelog_is_served_and_linked_from_docs(docs_app: Any) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=docs_app), base_url="http://t") as client:
        response = await client.get("/apis/system.crm/changelog")
        assert response.status_code == 200
        body = response.json()
        assert body["api"] == "system.crm"
        assert [(c["from_label"], c["to_label"], c["breaking"]) for c in body["changelogs"]] == [
            ("last release", "current", False)]
        assert (await client.get("/apis/no.such/changelog")).status_code == 404
        assert 'href="/apis/system.crm/changelog"' in (await client.get("/docs")).text
