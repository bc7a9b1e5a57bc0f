"""Starting, finding and replaying worker-sync runs — the decisions behind the routes.

At most one sync runs at a time: a start while another run is queued or running
answers that run (200) instead of racing it, and an Idempotency-Key replays the run
it first started. A replay of an exception starts (or joins) a sync of the changed
workers: the failed worker has no fingerprint for its current HR data, so that run
retries it — there is nothing to replay per worker beyond that.
"""

from __future__ import annotations

from contracts.runs import Run
from foundation.workflow_queue import start_workflow
from process_apis._internal.single_runs import start_or_join
from process_apis.worker_sync.runtime import runtime
from process_apis.worker_sync.workflow import PROCESS, STEPS, sync_workers, workflow_id

__all__ = ["WorkerSyncService"]

SCOPE = "worker_sync.startRun"


class WorkerSyncService:
    async def start(self, full: bool = False, idempotency_key: str | None = None) -> tuple[Run, bool]:
        """Start a sync (or find the one running / the one this key started); True when this call started it."""
        return await start_or_join(runtime().runs, PROCESS, SCOPE, "ws", STEPS, full=full,
                                   idempotency_key=idempotency_key, launch=self._launch)

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

    async def _launch(self, run: Run) -> None:
        await start_workflow(workflow_id(run.id, run.attempt), sync_workers, run.id, run.subject, run.attempt,
                             run.subject.startswith("full:"))
