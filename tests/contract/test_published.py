"""The checked-in contracts under contracts/openapi/ are exactly what the code generates."""

from __future__ import annotations

from pathlib import Path

from gateway.app import create_gateway
from gateway.openapi import PUBLISHED_DIR, write_published
from gateway.settings import load_settings


def test_published_contracts_match_the_code(tmp_path: Path) -> None:
    gateway = create_gateway(load_settings(env={}, home=str(tmp_path), seed_demo=False))
    differing = write_published(gateway, PUBLISHED_DIR, check=True)
    assert differing == [], (
        f"The published OpenAPI contracts in {PUBLISHED_DIR} differ from the code for: {', '.join(differing)}. "
        "Run `psconnect contracts generate` (or `make contracts`), review the diff, and commit the files."
    )
