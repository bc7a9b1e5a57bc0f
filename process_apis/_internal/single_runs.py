"""Starting a process that runs one at a time (worker sync, receivables poll): join the run in flight, replay a key.

A start while another run of the process is queued or running answers that run instead of racing it; an
Idempotency-Key answers the run it first started (for the same body). A new run's subject is its mode
(`full` or `changes`), when and its id's first characters.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable

from contracts.runs import Run
from foundation.clock import utcnow
from process_apis._internal.runs import RunStore
from process_apis._internal.start_keys import StartKeys

__all__ = ["start_or_join"]


async def start_or_join(runs: RunStore, process: str, scope: str, id_prefix: str, steps: tuple[str, ...], *,
                        full: bool, idempotency_key: str | None,
                        launch: Callable[[Run], Awaitable[None]]) -> tuple[Run, bool]:
    """The run this start answers with, and True when this call created it (`launch` hands it to DBOS)."""
    mode = "full" if full else "changes"
    body_print = hashlib.sha256(mode.encode()).hexdigest()
    keys = StartKeys(runs.engine, scope)
    if idempotency_key:
        earlier_id = keys.earlier_run(idempotency_key, body_print)
        earlier = runs.get(earlier_id) if earlier_id else None
        if earlier is not None:
            return earlier, False
    active = next(iter(runs.unfinished(process)), None)
    if active is not None:
        run, started = active, False
    else:
        token = uuid.uuid4().hex[:16]
        run, started = runs.create(process, f"{mode}:{utcnow():%Y-%m-%dT%H:%M:%SZ}:{token[:6]}",
                                   f"{id_prefix}_{token}", steps)
        await launch(run)
    if idempotency_key:
        keys.remember(idempotency_key, body_print, run.id)
    return run, started
