"""The layer rules in pyproject.toml hold today, and they catch a process module importing a vendor.

`make test` runs `lint-imports` on the tree; these tests run it on a copy so a violation can be
planted without touching the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("contracts", "foundation", "system_apis", "process_apis", "experience_apis", "policies", "web", "gateway",
            "cli", "governance")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _copy_tree(dest: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.json", "static",
                                                                               "templates", "spec"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_tree(tmp_path_factory.mktemp("layers"))


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_a_process_module_importing_a_vendor_is_refused(tree: Path) -> None:
    probe = tree / "process_apis" / "vendor_probe.py"
    probe.write_text("from system_apis.netsuite import client\n\n__all__ = ['client']\n")
    try:
        result = _lint(tree)
    finally:
        probe.unlink()
    assert result.returncode != 0
    assert "process_apis.vendor_probe -> system_apis.netsuite" in result.stdout
