"""Fixtures: fresh copies of the published contracts to edit, one per test."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.openapi import PUBLISHED_DIR

CRM = "system.crm.v1"


@pytest.fixture(scope="session")
def _published() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(PUBLISHED_DIR).glob("*.json"))}


@pytest.fixture
def published(_published: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return copy.deepcopy(_published)


@pytest.fixture
def crm(published: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return published[CRM]
