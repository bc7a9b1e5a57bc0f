"""Where the DBOS steps of every process find their collaborators at run time.

DBOS workflows and steps are module-level functions (they must be found again by name
after a restart), so their collaborators cannot be passed as arguments — they would be
pickled into the workflow's inputs. Each process declares one `RuntimeSlot` keyed by its
name; the gateway fills it once, at assembly, through the process's registry entry, and
the steps read it. One mechanism for every process instead of a global per package.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["RuntimeSlot", "configured"]

R = TypeVar("R")
_slots: dict[str, object] = {}


class RuntimeSlot(Generic[R]):
    """The runtime of one process, typed; `get` before `set` is a start-up bug, said so."""

    def __init__(self, process: str) -> None:
        self.process = process

    def set(self, rt: R) -> None:
        _slots[self.process] = rt

    def get(self) -> R:
        try:
            rt = _slots[self.process]
        except KeyError:
            raise RuntimeError(f"{self.process} runtime not configured; the app's assembly configures it") from None
        return rt  # type: ignore[return-value]  # only `set` of this slot's type writes the key


def configured() -> frozenset[str]:
    """The processes whose runtime is set."""
    return frozenset(_slots)
