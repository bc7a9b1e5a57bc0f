"""CORS config: off unless origins are named; what the portal's try-it needs is allowed and exposed."""

from __future__ import annotations

import msgspec
import pytest

from policies.cors import CorsConfig, litestar_cors


def test_no_origin_means_no_cors() -> None:
    assert litestar_cors(CorsConfig()) is None


def test_origins_from_settings_are_added() -> None:
    config = litestar_cors(CorsConfig(allow_origins=("https://portal.example",)), ("http://localhost:5173",))
    assert config is not None
    assert config.is_origin_allowed("https://portal.example") and config.is_origin_allowed("http://localhost:5173")
    assert not config.is_origin_allowed("https://evil.example")
    assert config.allow_credentials is False
    assert {"idempotency-key", "authorization"} <= {h.lower() for h in config.allow_headers}
    assert {"RateLimit", "Retry-After", "X-Correlation-ID"} <= set(config.expose_headers)


@pytest.mark.parametrize("origin", ["portal.example", "https://portal.example/path", "javascript:alert(1)"])
def test_an_origin_that_is_not_scheme_host_port_is_refused(origin: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"allow_origins": [origin]}, CorsConfig)
