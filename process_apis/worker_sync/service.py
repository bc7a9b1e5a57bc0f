"""Starting, finding and replaying worker-sync runs — the decisions behind the routes.

At most one sync runs at a time: a start while another run is queued or running
answers that run (200) instead of racing it, and an Idempotency-Key replays the run
it first started. A replay of an exception starts (or joins) a sync of the changed
workers: the failed worker has no fingerprint for its current HR data, so that run
retries it — there is nothing to replay per worker beyond that.
"""

from __future__ import annotations

import hashlib
import uuid

from contracts.runs import Run
from foundation.clock import utcnow
from foundation.workflow_queue import start_workflow
from process_apis._internal.start_keys import StartKeys
from process_apis.worker_sync.runtime import runtime
from process_apis.worker_sync.workflow import PROCESS, STEPS, sync_workers, workflow_id

__all__ = ["WorkerSyncService"]

SCOPE = "worker_sync.startRun"


def _mode(full: bool) -> str:
    return "full" if full else "changes"


class WorkerSyncService:
    async def start(self, full: bool = False, idempotency_key: str | None = None) -> tuple[Run, bool]:
        """Start a sync (or find the one running / the one this key started); True when this call started it."""
        rt = runtime()
        body_print = hashlib.sha256(_mode(full).encode()).hexdigest()
        if idempotency_key:
            earlier_id = StartKeys(runtime().runs.engine, SCOPE).earlier_run(idempotency_key, body_print)
            earlier = runtime().runs.get(earlier_id) if earlier_id else None
            if earlier is not None:
                return earlier, False
        active = self._active()
        if active is not None:
            run, started = active, False
        else:
            run_id = f"ws_{uuid.uuid4().hex[:16]}"
            run, started = rt.runs.create(PROCESS, f"{_mode(full)}:{utcnow():%Y-%m-%dT%H:%M:%SZ}:{run_id[3:9]}",
                                          run_id, STEPS)
            await self._launch(run)
        if idempotency_key:
            StartKeys(runtime().runs.engine, SCOPE).remember(idempotency_key, body_print, run.id)
        return run, started

    async def replay(self, exception_id: str) -> Run:
        """Claim an open worker-sync exception and sync the changed workers again (the failed one among them)."""
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
        await start_workflow(workflow_id(run.id, run.attempt), sync_workers, run.id, run.subject, run.attempt,
                             run.subject.startswith("full:"))
