"""Starting, finding and replaying receivables polls — the decisions behind the routes.

At most one poll runs at a time: a start while another is queued or running answers that run (200)
instead of racing it (two polls would read the same changes; recording is idempotent, but the second
is wasted calls against the ERPs' daily limits). An Idempotency-Key replays the run it first started.
Replaying an exception polls again: the failed entity's cursor never moved, so the new poll reads
what the failed one missed.
"""

from __future__ import annotations

import hashlib
import uuid

from contracts.runs import Run
from foundation.clock import utcnow
from foundation.workflow_queue import start_workflow
from process_apis._internal.start_keys import StartKeys
from process_apis.receivables.runtime import runtime
from process_apis.receivables.workflow import PROCESS, STEPS, poll_receivables, workflow_id

__all__ = ["ReceivablesService"]

SCOPE = "receivables.startRun"


class ReceivablesService:
    async def start(self, full: bool = False, idempotency_key: str | None = None) -> tuple[Run, bool]:
        """Start a poll (or find the one running / the one this key started); True when this call started it."""
        rt = runtime()
        body_print = hashlib.sha256(b"full" if full else b"changes").hexdigest()
        keys = StartKeys(rt.runs.engine, SCOPE)
        if idempotency_key:
            earlier_id = keys.earlier_run(idempotency_key, body_print)
            earlier = rt.runs.get(earlier_id) if earlier_id else None
            if earlier is not None:
                return earlier, False
        active = self._active()
        if active is not None:
            run, started = active, False
        else:
            run_id = f"rcv_{uuid.uuid4().hex[:16]}"
            mode = "full" if full else "changes"
            run, started = rt.runs.create(PROCESS, f"{mode}:{utcnow():%Y-%m-%dT%H:%M:%SZ}:{run_id[4:10]}", run_id,
                                          STEPS)
            if full:
                rt.state.forget_cursors()
            await self._launch(run)
        if idempotency_key:
            keys.remember(idempotency_key, body_print, run.id)
        return run, started

    async def replay(self, exception_id: str) -> Run:
        runtime().exceptions.claim(exception_id, PROCESS)
        run, _ = await self.start(False)
        return run

    async def resume_unstarted(self) -> int:
        """Launch runs recorded but never handed to DBOS (a crash between the two writes); DBOS dedupes the rest."""
        unfinished = runtime().runs.unfinished(PROCESS)
        for run in unfinished:
            await self._launch(run)
        return len(unfinished)

    def _active(self) -> Run | None:
        return next(iter(runtime().runs.unfinished(PROCESS)), None)

    async def _launch(self, run: Run) -> None:
        await start_workflow(workflow_id(run.id, run.attempt), poll_receivables, run.id, run.attempt, None)
