"""Cursors are opaque and a forged one is a 422 problem, not a 500."""

from __future__ import annotations

import pytest

from contracts.problems import ProblemError
from foundation.paging import decode_cursor, encode_cursor


def test_round_trip() -> None:
    assert decode_cursor(encode_cursor(150)) == 150 and decode_cursor(None) == 0


@pytest.mark.parametrize("bad", ["!!!", "bzotMQ", "eDox", "bzphYmM"])
def test_forged_cursor_is_a_validation_problem(bad: str) -> None:
    with pytest.raises(ProblemError) as err:
        decode_cursor(bad)
    assert err.value.problem.status == 422 and err.value.problem.code == "invalid_cursor"
