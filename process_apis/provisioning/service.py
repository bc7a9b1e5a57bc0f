"""Starting, finding and replaying provisioning runs — the decisions behind the routes.

One run per opportunity: the opportunity is resolved to its CRM id first (so
`OPP-0001` and the CRM's own id are the same run), the run row is unique per
subject, and the workflow id is derived from the run, so neither a retry, a
duplicate event nor two concurrent requests can start a second provisioning.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from contracts.problems import ProblemError
from contracts.runs import ExceptionRecord, Run
from foundation.clock import utcnow
from foundation.workflow_queue import start_workflow
from process_apis._internal.start_keys import StartKeys
from process_apis._internal.steps import unavailable
from process_apis._internal.system_clients import BusinessFailure, TransientFailure
from process_apis._internal.tables import runs
from process_apis.provisioning.runtime import runtime
from process_apis.provisioning.workflow import PROCESS, STEPS, provision, workflow_id

__all__ = ["ProvisioningService"]

REPLAYABLE = ("needs_attention", "failed")


class ProvisioningService:
    async def start(self, opportunity_ref: str, idempotency_key: str | None = None) -> tuple[Run, bool]:
        """Start (or find) the run for an opportunity; True when this call started it."""
        rt = runtime()
        fingerprint = hashlib.sha256(opportunity_ref.encode()).hexdigest()
        keys = StartKeys(rt.runs.engine, "provisioning.startRun")
        if idempotency_key:
            earlier = keys.earlier_run(idempotency_key, fingerprint)
            found = rt.runs.get(earlier) if earlier else None
            if found is not None:
                return found, False
        try:
            opp = await rt.crm.get_opportunity(opportunity_ref)
        except BusinessFailure as exc:
            if exc.status == 404:
                raise ProblemError(404, "not-found", "Opportunity not found",
                                   f"The CRM has no opportunity {opportunity_ref!r}.", code="unknown_opportunity")\
                    from exc
            raise ProblemError(422, "validation-error", "Opportunity cannot be read", str(exc)) from exc
        except TransientFailure as exc:
            raise unavailable(exc, "CRM") from exc
        run, created = rt.runs.create(PROCESS, opp.id, f"prov_{opp.id}", STEPS)
        if created or run.status in ("queued", "running"):
            await self._launch(run)
        if idempotency_key:
            keys.remember(idempotency_key, fingerprint, run.id)
        return run, created

    async def replay(self, exception_id: str) -> Run:
        """Re-run the process behind an open exception, after its data was fixed."""
        rt = runtime()

        def requeue(conn: sa.Connection, record: ExceptionRecord) -> None:
            conn.execute(runs.update().where(runs.c.id == record.run_id, runs.c.status.in_(REPLAYABLE))
                         .values(attempt=runs.c.attempt + 1, status="queued", updated_at=utcnow(), finished_at=None))

        record = rt.exceptions.claim(exception_id, PROCESS, then=requeue)
        run = rt.runs.new_attempt_steps(record.run_id)
        await self._launch(run)
        return run

    async def resume_unstarted(self) -> int:
        """Launch runs recorded but never handed to DBOS (a crash between the two writes)."""
        unfinished = runtime().runs.unfinished(PROCESS)
        for run in unfinished:
            await self._launch(run)
        return len(unfinished)

    async def _launch(self, run: Run) -> None:
        await start_workflow(workflow_id(run.id, run.attempt), provision, run.id, run.subject, run.attempt)
