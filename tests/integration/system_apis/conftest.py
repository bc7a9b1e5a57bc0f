"""Fixtures every vendor's system-API tests share; the vendor-specific ones (sim, http, client, api) stay in
each test file, built from tests/integration/system_apis/vendor_kit.py."""

from __future__ import annotations

import pytest

from tests.integration.system_apis.vendor_kit import Sleeps


@pytest.fixture
def sleeps() -> Sleeps:
    """The client's sleep: records backoff waits (`sleeps.waits`) so tests neither wait nor guess them."""
    return Sleeps()
