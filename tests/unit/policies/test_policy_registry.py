"""The policy registry: policies found through their entry points, each API's chain named by the bindings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest

from gateway.app import create_gateway
from gateway.settings import load_settings
from policies.base import Policy
from policies.bindings import DEFAULT_FILE, BindingsError, load_bindings
from policies.registry import PolicyBuild, PolicyFactory, registered_policies, resolve_chain

BUILT_IN = {"auth", "ip_allowlist", "spike_arrest", "rate_limit", "quota", "validation", "versioning", "idempotency",
            "audit"}
_APIS = ("apis:\n  system.crm: {title: C, layer: system, owner: x}\n"
         "  system.erp: {title: E, layer: system, owner: x, spike_arrest: {per_second: 5}}\n")


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return path


def _names(bindings_path: Path, api: str) -> set[str]:
    return {use.factory.name for use in resolve_chain(load_bindings(bindings_path), api)}


def test_built_in_policies_are_registered_through_entry_points() -> None:
    registry = registered_policies()
    assert set(registry) >= BUILT_IN
    assert all(registry[name].name == name for name in registry)


def test_published_file_names_every_built_in_policy() -> None:
    assert set(load_bindings().policies) == BUILT_IN


def test_disabling_a_policy_for_one_api_removes_it_from_that_apis_chain_only(tmp_path: Path) -> None:
    path = _file(tmp_path, "format_version: 3\npolicies: {auth: true, rate_limit: true, idempotency: true}\n"
                 + _APIS.replace("owner: x}\n", "owner: x, policies: {idempotency: false}}\n", 1))
    assert _names(path, "system.crm") == {"auth", "rate_limit"}
    assert _names(path, "system.erp") == {"auth", "rate_limit", "idempotency"}


def test_an_api_may_add_a_policy_the_global_list_leaves_out(tmp_path: Path) -> None:
    path = _file(tmp_path, "format_version: 3\npolicies: {auth: true}\n"
                 + _APIS.replace("spike_arrest: {per_second: 5}", "spike_arrest: {per_second: 5}, "
                                 "policies: {spike_arrest: true}"))
    assert _names(path, "system.crm") == {"auth"}
    assert _names(path, "system.erp") == {"auth", "spike_arrest"}


def test_a_format_2_file_runs_the_standard_chain(tmp_path: Path) -> None:
    path = _file(tmp_path, "format_version: 2\n" + _APIS)
    assert _names(path, "system.crm") == BUILT_IN


def test_gateway_chain_follows_the_bindings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = DEFAULT_FILE.read_text()
    psa = ("    description: Delivery projects with milestones and budgets in each legal entity's PSA "
           "(Kantata OX, Certinia).\n")
    assert psa in text
    text = text.replace(psa, "    description: Delivery projects.\n    policies: {validation: false, quota: false}\n")
    monkeypatch.setenv("PSCONNECT_BINDINGS", str(_file(tmp_path, text)))
    gateway = create_gateway(load_settings(env={}, home=str(tmp_path / "home"), seed_demo=False))
    psa = {p.name for p in gateway.policies.policies_for("system.psa")}
    crm = {p.name for p in gateway.policies.policies_for("system.crm")}
    assert psa == crm - {"validation", "quota"}
    assert crm == BUILT_IN - {"spike_arrest"}


@pytest.mark.parametrize(("text", "field"), [
    ("format_version: 3\npolicies: {auth: true, rate_limitt: true}\n" + _APIS, "policies.rate_limitt"),
    ("format_version: 3\n" + _APIS.replace("owner: x}\n", "owner: x, policies: {geo_fence: true}}\n", 1),
     "apis.system.crm.policies.geo_fence"),
    ("format_version: 3\npolicies: {auth: {leeway: 5}}\n" + _APIS, "policies.auth"),
    ("format_version: 3\npolicies: {Auth: true}\n" + _APIS, "policies"),
])
def test_unknown_policy_stops_loading_naming_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(BindingsError) as err:
        load_bindings(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_gateway_refuses_to_start_on_an_unknown_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path, "format_version: 3\npolicies: {auth: true, geo_fence: true}\n" + _APIS)
    monkeypatch.setenv("PSCONNECT_BINDINGS", str(path))
    with pytest.raises(BindingsError, match=r"policies\.geo_fence: unknown policy 'geo_fence'"):
        create_gateway(load_settings(env={}, home=str(tmp_path / "home"), seed_demo=False))


class _HeaderConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    header: str = "x-firm"


class _FirmPolicy(Policy[_HeaderConfig]):
    name: ClassVar[str] = "firm_header"
    order: ClassVar[int] = 100


def _firm_factory(build: PolicyBuild) -> Policy[Any]:
    return _FirmPolicy(build.config)


def test_a_policy_from_another_package_takes_its_settings_from_its_entry(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    firm = PolicyFactory(name="firm_header", build=_firm_factory, config=_HeaderConfig)
    registry = {**registered_policies(), "firm_header": firm}
    monkeypatch.setattr("policies.registry.registered_policies", lambda: registry)
    path = _file(tmp_path, "format_version: 3\npolicies: {firm_header: true}\n"
                 + _APIS.replace("owner: x}\n", "owner: x, policies: {firm_header: {header: x-crm}}}\n", 1))
    bindings = load_bindings(path)
    configs = {api: [use.config for use in resolve_chain(bindings, api)] for api in ("system.crm", "system.erp")}
    assert configs == {"system.crm": [_HeaderConfig(header="x-crm")], "system.erp": [_HeaderConfig()]}
    bad = _file(tmp_path, "format_version: 3\npolicies: {firm_header: {colour: red}}\n" + _APIS)
    with pytest.raises(BindingsError, match=r"policies\.firm_header"):
        load_bindings(bad)
