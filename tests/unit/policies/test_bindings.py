"""Bindings: the published file loads; a bad file stops start-up naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.bindings import BindingsError, load_bindings, required_scopes


def test_published_bindings_load_and_resolve_scopes_by_method() -> None:
    bindings = load_bindings()
    assert required_scopes(bindings, "system.crm", "crm.listAccounts", "GET") == ("system.crm:read",)
    assert required_scopes(bindings, "system.erp", "erp.upsertProject", "PUT") == ("system.erp:write",)
    assert required_scopes(bindings, "process.provisioning", "provisioning.startRun", "POST") == \
        ("process.provisioning:write",)


def test_operation_override_wins(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("format_version: 2\napis:\n  system.crm:\n    title: CRM\n    layer: system\n    owner: x\n"
                    "    operations:\n      crm.getAccount: {scopes: [system.crm:admin]}\n")
    assert required_scopes(load_bindings(path), "system.crm", "crm.getAccount", "GET") == ("system.crm:admin",)


@pytest.mark.parametrize(("text", "field"), [
    ("format_version: 3\napis: {}\n", "format_version"),
    ("format_version: 2\napis:\n  system.crm: {title: C, layer: galaxy, owner: x}\n", "layer"),
    ("format_version: 2\napis:\n  system.crm: {title: C, layer: system, owner: x, colour: red}\n", "colour"),
    ("format_version: 2\napis:\n  system.crm: {title: C, layer: system, owner: x, lifecycle: deprecated}\n",
     "deprecat"),
    ("format_version: 2\napis:\n  system.crm: {title: C, layer: system, owner: x,"
     " operations: {op: {scopes: [Not A Scope]}}}\n", "scopes"),
])
def test_invalid_file_is_refused_with_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BindingsError) as err:
        load_bindings(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_unbound_api_is_an_error_not_an_open_route() -> None:
    with pytest.raises(BindingsError):
        required_scopes(load_bindings(), "system.nope", "op", "GET")
