"""The vendor budget's shares: one consumer's burst leaves room for the others and for our processes."""

from __future__ import annotations

from system_apis.pacing import Pacer, VendorBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _sent(pacer: Pacer, who: str | None, n: int) -> int:
    return sum(pacer.take(who)[0] == 0 for _ in range(n))


def test_harvests_budget_is_shared_between_consumers_and_the_service_identity() -> None:
    clock = Clock()
    pacer = Pacer(VendorBudget(100, 15.0), clock=clock)
    assert _sent(pacer, "a", 100) == 40  # one consumer: 40% of the budget
    clock.now += 5
    wait, own_share = pacer.take("a")
    assert wait == 10.0 and own_share  # its share frees room when its first send leaves the window
    assert _sent(pacer, "b", 100) == 40
    assert _sent(pacer, "c", 100) == 0  # consumers together: 80%; the rest is the processes'
    assert _sent(pacer, "psconnect-internal", 100) == 20
    wait, own_share = pacer.take(None)  # outside a request: only the whole budget counts
    assert wait == 10.0 and not own_share
    clock.now += 10
    assert _sent(pacer, "a", 100) == 40  # A's window has passed; B's sends are still in theirs
