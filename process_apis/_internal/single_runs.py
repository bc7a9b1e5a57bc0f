"""Starting a process that runs one at a time (worker sync, receivables poll): join the run in flight, replay a key.

A start while another run of the process is queued or running answers that run instead of racing it — also
when the starts race on several workers: a run is inserted only in the transaction that names it the process's
unfinished run (`StartKeys.take_slot`), and a start that loses joins the winner's run. An
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
    while True:
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
            break
        created = _create(runs, keys, process, mode, id_prefix, steps)
        if created is not None:
            run, started = created, True
            keys.take_follow_up()  # a new run reads from every cursor: whatever a follow-up was wanted for
            await launch(run)
            break
        # another start inserted a run between the two reads (another worker): join it
    if idempotency_key:
        keys.remember(idempotency_key, body_print, run.id)
    return run, started


def take_follow_up(runs: RunStore, process: str, scope: str, id_prefix: str, steps: tuple[str, ...]) -> Run | None:
    """The follow-up run, created now, when one was wanted while the ending run was in flight (the run's
    workflow launches it: a workflow, not a step, may start another).

    Created before the wish is cleared, and only while no other run is unfinished: after a crash between the
    two, the step run again finds the run it created unfinished and creates none (start-up launches that one
    with the other unstarted runs); a start's run that came first reads all the follow-up was wanted for."""
    keys = StartKeys(runs.engine, scope)
    if not keys.follow_up_wanted():
        return None
    run = _create(runs, keys, process, "changes", id_prefix, steps)
    keys.take_follow_up()
    return run


def _create(runs: RunStore, keys: StartKeys, process: str, mode: str, id_prefix: str,
            steps: tuple[str, ...]) -> Run | None:
    """The process's next run, inserted unless another run is unfinished (`StartKeys.take_slot`)."""
    token = uuid.uuid4().hex[:16]
    run_id = f"{id_prefix}_{token}"
    return runs.create_if(lambda conn: keys.take_slot(conn, run_id), process,
                          f"{mode}:{utcnow():%Y-%m-%dT%H:%M:%SZ}:{token[:6]}", run_id, steps)
