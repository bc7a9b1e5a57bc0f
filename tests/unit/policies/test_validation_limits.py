"""Validation policy config and the nesting-depth scan (no I/O)."""

from __future__ import annotations

import msgspec
import pytest

from policies.validation import ValidationConfig, nesting_depth


class TestNestingDepth:
    @pytest.mark.parametrize(("body", "depth"), [
        (b"", 0), (b"1", 0), (b"{}", 1), (b'{"a": [1, {"b": []}]}', 4), (b"[" * 50 + b"]" * 50, 50),
        (b'{"text": "[[[[{{{{ not structure"}', 1), (b'{"q": "\\"[[[[", "r": [1]}', 2), (b"[[],[],[[]]]", 3),
    ])
    def test_counts_structure_not_strings(self, body: bytes, depth: int) -> None:
        assert nesting_depth(body) == depth

    def test_a_bomb_is_measured_quickly(self) -> None:
        assert nesting_depth(b"[" * 1_000_000) == 1_000_000


class TestConfig:
    def test_defaults_are_safe(self) -> None:
        config = ValidationConfig()
        assert config.max_body_bytes == 1 << 20 and config.max_depth == 32
        assert config.media_types == ("application/json",) and config.response_sample_rate == 0.0

    @pytest.mark.parametrize("raw", [{"max_body_bytes": 0}, {"max_depth": 10_000}, {"response_sample_rate": 1.5},
                                     {"max_bytes": 10}])
    def test_bad_values_are_refused_at_load_naming_the_field(self, raw: dict[str, object]) -> None:
        with pytest.raises(msgspec.ValidationError, match=next(iter(raw))):
            msgspec.convert(raw, ValidationConfig)
