"""Plans and consumers: precedence of overrides, start-up validation naming file and field, the pinned chain."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.app import create_gateway
from gateway.settings import load_settings
from policies.bindings import BindingsError, load_bindings
from policies.plans import Allowance, Consumer, Plan, resolve_plan

PLANS = {
    "bronze": Plan(limits=Allowance(per_second=5, per_minute=100, per_day=1000),
                   apis={"system.erp": Allowance(per_minute=10)}),
    "gold": Plan(strategy="moving-window", on_store_failure="closed", limits=Allowance(per_second=50)),
}
CONSUMERS = {
    "acme": Consumer(plan="bronze", limits=Allowance(per_day=5000), apis={"system.erp": Allowance(per_second=1)}),
    "vip": Consumer(plan="gold", strategy="fixed-window"),
}


class TestResolution:
    def test_unknown_consumer_gets_the_default_plan(self) -> None:
        resolved = resolve_plan(PLANS, CONSUMERS, "bronze", "stranger", "system.crm")
        assert resolved.plan == "bronze"
        assert resolved.allowance == Allowance(per_second=5, per_minute=100, per_day=1000)

    def test_most_specific_setting_wins_field_by_field(self) -> None:
        erp = resolve_plan(PLANS, CONSUMERS, "bronze", "acme", "system.erp").allowance
        # consumer+API (per_second) > consumer (per_day) > plan+API (per_minute) > plan
        assert erp == Allowance(per_second=1, per_minute=10, per_day=5000)
        crm = resolve_plan(PLANS, CONSUMERS, "bronze", "acme", "system.crm").allowance
        assert crm == Allowance(per_second=5, per_minute=100, per_day=5000)

    def test_consumer_may_change_strategy_and_keeps_the_plans_failure_mode(self) -> None:
        resolved = resolve_plan(PLANS, CONSUMERS, "bronze", "vip", "system.crm")
        assert (resolved.plan, resolved.strategy, resolved.on_store_failure) == ("gold", "fixed-window", "closed")


class TestPublishedFile:
    def test_published_plans_load(self) -> None:
        bindings = load_bindings()
        assert {"bronze", "silver", "gold"} <= set(bindings.plans)
        assert bindings.default_plan in bindings.plans
        assert bindings.consumers["psconnect-internal"].plan == "internal"

    def test_resolved_chain_is_pinned_for_a_few_routes(self, tmp_path: Path) -> None:
        gateway = create_gateway(load_settings(env={}, home=str(tmp_path), seed_demo=False))
        chains = {api: [(p.name, p.order) for p in sorted(gateway.policies.policies_for(api),
                                                           key=lambda p: p.order, reverse=True)]
                  for api in ("system.crm", "system.erp", "process.provisioning", "system.hr",
                              "experience.dashboards", "process.time_to_bill")}
        common = [("auth", 1450), ("ip_allowlist", 1400), ("rate_limit", 910), ("quota", 900),
                  ("validation", 850), ("versioning", 800), ("idempotency", 700), ("audit", 100)]
        assert chains["system.crm"] == common
        assert chains["process.provisioning"] == common
        assert chains["system.hr"] == common
        assert chains["experience.dashboards"] == common
        assert chains["process.time_to_bill"] == common
        assert chains["system.erp"] == [*common[:2], ("spike_arrest", 920), *common[2:]]


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "plans.yaml"
    path.write_text("format_version: 2\napis:\n  system.crm: {title: C, layer: system, owner: x}\n" + body)
    return path


@pytest.mark.parametrize(("body", "field"), [
    ("plans:\n  bronze: {limits: {per_second: 0}}\ndefault_plan: bronze\n", "per_second"),
    ("plans:\n  bronze: {strategy: leaky-bucket}\ndefault_plan: bronze\n", "strategy"),
    ("plans:\n  bronze: {}\ndefault_plan: silver\n", "default_plan"),
    ("plans:\n  bronze: {}\ndefault_plan: bronze\nconsumers:\n  acme: {plan: platinum}\n", "consumers.acme.plan"),
    ("plans:\n  bronze: {apis: {system.nope: {per_day: 3}}}\ndefault_plan: bronze\n", "plans.bronze.apis"),
    ("plans:\n  bronze: {limits: {per_week: 3}}\ndefault_plan: bronze\n", "per_week"),
    ("plans:\n  bronze: {on_store_failure: maybe}\ndefault_plan: bronze\n", "on_store_failure"),
    ("apis_typo: {}\n", "apis_typo"),
])
def test_invalid_plans_stop_start_up_naming_file_and_field(tmp_path: Path, body: str, field: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(BindingsError) as err:
        load_bindings(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_format_1_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("format_version: 1\napis: {}\n")
    with pytest.raises(BindingsError, match="format_version 1 is not supported"):
        load_bindings(path)


def test_gateway_refuses_to_start_on_an_invalid_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "plans:\n  bronze: {}\ndefault_plan: silver\n")
    monkeypatch.setenv("PSCONNECT_BINDINGS", str(path))
    with pytest.raises(BindingsError, match="default_plan"):
        create_gateway(load_settings(env={}, home=str(tmp_path / "home"), seed_demo=False))
