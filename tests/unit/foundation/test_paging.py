"""Cursors are opaque, bound to the list that issued them, and a forged one is a 422 problem, not a 500."""

from __future__ import annotations

import pytest

from contracts.problems import ProblemError
from foundation.paging import decode_cursor, encode_cursor


def test_round_trip() -> None:
    assert decode_cursor(encode_cursor(150, "provisioning.runs"), "provisioning.runs") == 150
    assert decode_cursor(None, "provisioning.runs") == 0


@pytest.mark.parametrize("bad", ["!!!", "bzotMQ", "eDox", "bzphYmM", "eyJvIjoxfQ", "a" * 3000])
def test_forged_cursor_is_a_validation_problem(bad: str) -> None:
    with pytest.raises(ProblemError) as err:
        decode_cursor(bad, "provisioning.runs")
    assert err.value.problem.status == 422 and err.value.problem.code == "invalid_cursor"


def test_a_cursor_of_another_list_is_refused_even_when_its_position_has_the_same_shape() -> None:
    cursor = encode_cursor(50, "provisioning.runs")
    for other in ("worker_sync.runs", "provisioning.exceptions", "events", "dashboards.backlog"):
        with pytest.raises(ProblemError) as err:
            decode_cursor(cursor, other)
        assert err.value.problem.status == 422 and err.value.problem.code == "invalid_cursor"
