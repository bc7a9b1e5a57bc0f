"""The breaking-change gate covers every published API (issue 12: six of eleven had no baseline).

`make test` runs `psconnect contracts diff contracts/releases contracts/openapi --fail-on breaking`.
A published API must either have a release baseline there — so removing one of its paths fails
the gate — or say `lifecycle: beta` in the bindings, which the catalog then shows.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import msgspec

from cli.main import main
from gateway.openapi import PUBLISHED_DIR
from governance.spec import load_contracts
from policies.bindings import load_bindings

RELEASES = Path(PUBLISHED_DIR).parent / "releases"


def _gate(old: Path, new: Path) -> int:
    return main(["contracts", "diff", str(old), str(new), "--fail-on", "breaking", "--format", "json",
                 "--output", str(new.parent / "report.json")])


def _copy_published(tmp_path: Path) -> Path:
    new = tmp_path / "openapi"
    shutil.copytree(PUBLISHED_DIR, new)
    return new


def test_every_stable_published_api_has_a_release_baseline() -> None:
    published = load_contracts(PUBLISHED_DIR)
    released = set(load_contracts(RELEASES))
    beta = {key for key, doc in published.items() if doc["info"].get("x-lifecycle") == "beta"}
    assert set(published) - released - beta == set(), "stable but never released (no breaking-change baseline)"


def test_removing_a_path_of_system_time_fails_the_gate(tmp_path: Path) -> None:
    new = _copy_published(tmp_path)
    document: dict[str, Any] = json.loads((new / "system.time.v1.json").read_text())
    removed = "/system/time/v1/projects"
    assert removed in document["paths"]
    del document["paths"][removed]
    (new / "system.time.v1.json").write_text(json.dumps(document))
    assert _gate(RELEASES, new) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert any(f["rule"] == "path-removed" and f["document"] == "system.time.v1" for f in report["findings"])


def test_an_unreleased_api_that_claims_stable_fails_the_gate(tmp_path: Path) -> None:
    old = tmp_path / "releases"
    shutil.copytree(RELEASES, old)
    (old / "system.hr.v1.json").unlink()  # as if system.hr had never been released
    new = _copy_published(tmp_path)
    assert json.loads((new / "system.hr.v1.json").read_text())["info"]["x-lifecycle"] == "stable"
    assert _gate(old, new) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert [f["document"] for f in report["findings"] if f["rule"] == "api-unreleased"] == ["system.hr.v1"]


def test_an_unreleased_beta_api_passes_the_gate(tmp_path: Path) -> None:
    old = tmp_path / "releases"
    shutil.copytree(RELEASES, old)
    (old / "system.hr.v1.json").unlink()
    new = _copy_published(tmp_path)
    document = json.loads((new / "system.hr.v1.json").read_text())
    document["info"]["x-lifecycle"] = "beta"
    (new / "system.hr.v1.json").write_text(json.dumps(document))
    assert _gate(old, new) == 0


def test_the_catalog_says_beta_unless_the_bindings_say_the_api_is_released() -> None:
    bindings = load_bindings()
    released = {key.rsplit(".", 1)[0] for key in load_contracts(RELEASES)}
    for name, api in bindings.apis.items():
        if api.lifecycle != "beta":
            assert name in released, f"{name} is {api.lifecycle} in the bindings but has no release baseline"
    declared = copy.deepcopy(msgspec.to_builtins(bindings.apis["system.hr"]))
    declared.pop("lifecycle")
    assert msgspec.convert(declared, type(bindings.apis["system.hr"])).lifecycle == "beta"
