"""Starting a process that runs one at a time (worker sync, receivables poll): join the run in flight, replay a key.

A start while another run of the process is queued or running answers that run instead of racing it; an
Idempotency-Key answers the run it first started (for the same body). A new run's subject is its mode
(`full` or `changes`), when and its id's first characters. A start prompted by a change the vendor reported
(`follow_up`) that joins a run in flight also gets one more run after it, which reads what the first may have
read past.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable

from contracts.runs import Run
from foundation.clock import utcnow
from process_apis._internal.runs import RunStore
from process_apis._internal.start_keys import StartKeys

__all__ = ["start_or_join", "take_follow_up"]


async def start_or_join(runs: RunStore, process: str, scope: str, id_prefix: str, steps: tuple[str, ...], *,
                        full: bool, idempotency_key: str | None, launch: Callable[[Run], Awaitable[None]],
                        follow_up: bool = False) -> tuple[Run, bool]:
    """The run this start answers with, and True when this call created it (`launch` hands it to DBOS).

    `follow_up`: the caller knows something changed just now (a vendor's event), which a run in flight may have
    read past; joining it then also wants one more run after it (`take_follow_up`, at the end of the run).
    """
    mode = "full" if full else "changes"
    body_print = hashlib.sha256(mode.encode()).hexdigest()
    keys = StartKeys(runs.engine, scope)
    if idempotency_key:
        earlier_id = keys.earlier_run(idempotency_key, body_print)
        earlier = runs.get(earlier_id) if earlier_id else None
        if earlier is not None:
            return earlier, False
    active = next(iter(runs.unfinished(process)), None)
    if active is not None and follow_up:
        keys.want_follow_up(active.id)
        now = runs.unfinished(process)
        if active.id not in {r.id for r in now}:
            # It ended between the two reads, maybe before it looked for follow-ups: join the run that came
            # after it, else start one (unless its workflow took the wish first, and starts it).
            active = now[0] if now else (None if keys.take_follow_up() else active)
    if active is not None:
        run, started = active, False
    else:
        run, started = _create(runs, process, mode, id_prefix, steps)
        keys.take_follow_up()  # a new run reads from every cursor: whatever a follow-up was wanted for
        await launch(run)
    if idempotency_key:
        keys.remember(idempotency_key, body_print, run.id)
    return run, started


def take_follow_up(runs: RunStore, process: str, scope: str, id_prefix: str, steps: tuple[str, ...]) -> Run | None:
    """The follow-up run, created now, when one was wanted while the ending run was in flight (the run's
    workflow launches it: a workflow, not a step, may start another).

    Created before the wish is cleared: a crash between the two leaves one run too many (launched at start-up
    with the other unstarted runs), never none."""
    keys = StartKeys(runs.engine, scope)
    if not keys.follow_up_wanted():
        return None
    run, _ = _create(runs, process, "changes", id_prefix, steps)
    keys.take_follow_up()
    return run


def _create(runs: RunStore, process: str, mode: str, id_prefix: str, steps: tuple[str, ...]) -> tuple[Run, bool]:
    token = uuid.uuid4().hex[:16]
    return runs.create(process, f"{mode}:{utcnow():%Y-%m-%dT%H:%M:%SZ}:{token[:6]}", f"{id_prefix}_{token}", steps)
