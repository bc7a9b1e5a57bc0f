"""Starting, finding and replaying receivables polls — the decisions behind the routes.

At most one poll runs at a time: a start while another is queued or running answers that run (200)
instead of racing it (two polls would read the same changes; recording is idempotent, but the second
is wasted calls against the ERPs' daily limits). An Idempotency-Key replays the run it first started.
Replaying an exception polls again: the failed entity's cursor never moved, so the new poll reads
what the failed one missed.
"""

from __future__ import annotations

from contracts.runs import Run
from foundation.workflow_queue import start_workflow
from process_apis._internal.single_runs import start_or_join
from process_apis.receivables.runtime import runtime
from process_apis.receivables.state import START_SCOPE
from process_apis.receivables.workflow import PROCESS, STEPS, poll_receivables, workflow_id

__all__ = ["ReceivablesService"]


class ReceivablesService:
    async def start(self, full: bool = False, idempotency_key: str | None = None, *,
                    changed: bool = False) -> tuple[Run, bool]:
        """Start a poll (or find the one running / the one this key started); True when this call started it.

        `changed`: an ERP just reported a change (its webhook). A poll in flight may have read that entity
        already, so joining it also wants one more (changes) poll after it."""
        rt = runtime()

        async def launch(run: Run) -> None:
            if full:
                rt.state.forget_cursors()
            await self._launch(run)

        return await start_or_join(rt.runs, PROCESS, START_SCOPE, "rcv", STEPS, full=full,
                                   idempotency_key=idempotency_key, launch=launch, follow_up=changed)

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

    async def _launch(self, run: Run) -> None:
        await start_workflow(workflow_id(run.id, run.attempt), poll_receivables, run.id, run.attempt, None)
