"""Replay by process: the workbench replays an exception without knowing which process raised it.

Each process registers how it replays its own exceptions when the gateway is
assembled; an exception's `process` field picks the replayer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from contracts.problems import ProblemError
from contracts.runs import Run

__all__ = ["Replayer", "register_replayer", "replay"]

Replayer = Callable[[str], Awaitable[Run]]
_replayers: dict[str, Replayer] = {}


def register_replayer(process: str, replayer: Replayer) -> None:
    _replayers[process] = replayer


async def replay(process: str, exception_id: str) -> Run:
    replayer = _replayers.get(process)
    if replayer is None:
        raise ProblemError(409, "conflict", "Not replayable",
                           f"Exceptions of process {process!r} cannot be replayed here.", code="not_replayable")
    return await replayer(exception_id)
