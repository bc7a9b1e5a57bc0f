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


def test_published_bindings_declare_request_governance() -> None:
    bindings = load_bindings()
    assert bindings.idempotency.operations["provisioning.startRun"] == "required"
    assert bindings.validation.max_body_bytes == 1 << 20
    assert bindings.ip_allowlist().clients == {}


def test_consumer_ip_allow_becomes_the_allow_list(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("format_version: 2\napis: {}\ntrusted_proxies: [10.1.0.0/16]\n"
                    "consumers:\n  app: {plan: unlimited, ip_allow: [192.0.2.0/24]}\n  other: {plan: unlimited}\n")
    allow = load_bindings(path).ip_allowlist()
    assert allow.clients == {"app": ("192.0.2.0/24",)} and allow.trusted_proxies == ("10.1.0.0/16",)


def test_operation_override_wins(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("format_version: 2\napis:\n  system.crm:\n    title: CRM\n    layer: system\n    owner: x\n"
                    "    operations:\n      crm.getAccount: {scopes: [system.crm:admin]}\n")
    assert required_scopes(load_bindings(path), "system.crm", "crm.getAccount", "GET") == ("system.crm:admin",)


@pytest.mark.parametrize(("text", "field"), [
    ("format_version: 4\napis: {}\n", "format_version"),
    ("format_version: 2\napis:\n  system.crm: {title: C, layer: galaxy, owner: x}\n", "layer"),
    ("format_version: 2\napis:\n  system.crm: {title: C, layer: system, owner: x, colour: red}\n", "colour"),
    ("format_version: 2\napis:\n  system.crm: {title: C, layer: system, owner: x, lifecycle: deprecated}\n",
     "deprecat"),
    ("format_version: 2\napis:\n  system.crm: {title: C, layer: system, owner: x,"
     " operations: {op: {scopes: [Not A Scope]}}}\n", "scopes"),
    ("format_version: 2\napis: {}\nconsumers:\n  app: {plan: unlimited, ip_allow: [10.0.0.0/33]}\n", "ip_allow"),
    ("format_version: 2\napis: {}\nvalidation: {max_body_bytes: 0}\n", "validation.max_body_bytes"),
    ("format_version: 2\napis: {}\nidempotency: {operations: {op: always}}\n", "idempotency.operations"),
    ("format_version: 2\napis: {}\ncors: {allow_origins: [not-an-origin]}\n", "cors.allow_origins"),
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
