"""Starting, finding and replaying provisioning runs — the decisions behind the routes.

One run per opportunity: the opportunity is resolved to its CRM id first (so
`OPP-0001` and the Salesforce id are the same run), the run row is unique per
subject, and the workflow id is derived from the run, so neither a retry, a
duplicate event nor two concurrent requests can start a second provisioning.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from dbos import DBOS, SetWorkflowID

from contracts.problems import ProblemError
from contracts.runs import Run
from process_apis._internal.clock import utcnow
from process_apis._internal.system_clients import BusinessFailure, TransientFailure
from process_apis._internal.tables import exceptions, idempotency_keys, runs
from process_apis.provisioning.runtime import runtime
from process_apis.provisioning.workflow import PROCESS, STEPS, provision, workflow_id

__all__ = ["ProvisioningService"]

REPLAYABLE = ("needs_attention", "failed")


class ProvisioningService:
    async def start(self, opportunity_ref: str, idempotency_key: str | None = None) -> tuple[Run, bool]:
        """Start (or find) the run for an opportunity; True when this call started it."""
        rt = runtime()
        fingerprint = hashlib.sha256(opportunity_ref.encode()).hexdigest()
        if idempotency_key:
            earlier = self._idempotent_run(idempotency_key, fingerprint)
            if earlier is not None:
                return earlier, False
        try:
            opp = await rt.crm.get_opportunity(opportunity_ref)
        except BusinessFailure as exc:
            if exc.status == 404:
                raise ProblemError(404, "not-found", "Opportunity not found",
                                   f"The CRM has no opportunity {opportunity_ref!r}.", code="unknown_opportunity")\
                    from exc
            raise ProblemError(422, "validation-error", "Opportunity cannot be read", str(exc)) from exc
        except TransientFailure as exc:
            raise ProblemError(503, "upstream-unavailable", "CRM unavailable", str(exc),
                               headers={"Retry-After": str(int(exc.retry_after or 1))}) from exc
        run, created = rt.runs.create(PROCESS, opp.id, f"prov_{opp.id}", STEPS)
        if created or run.status in ("queued", "running"):
            await self._launch(run)
        if idempotency_key:
            self._remember(idempotency_key, fingerprint, run.id)
        return run, created

    async def replay(self, exception_id: str) -> Run:
        """Re-run the process behind an open exception, after its data was fixed."""
        rt = runtime()
        record = rt.exceptions.get(exception_id)
        if record is None:
            raise ProblemError(404, "not-found", "Exception not found", f"No exception {exception_id!r}.")
        with rt.runs.engine.begin() as conn:  # claim it atomically: two replays never both start
            claimed = conn.execute(exceptions.update().where(
                exceptions.c.id == exception_id, exceptions.c.status == "open").values(
                status="replayed", replay_count=exceptions.c.replay_count + 1, updated_at=utcnow())).rowcount
            if claimed:
                conn.execute(runs.update().where(runs.c.id == record.run_id, runs.c.status.in_(REPLAYABLE))
                             .values(attempt=runs.c.attempt + 1, status="queued", updated_at=utcnow(),
                                     finished_at=None))
        if not claimed:
            raise ProblemError(409, "conflict", "Exception is not open",
                               f"Exception {exception_id} is {record.status}; only open exceptions replay.",
                               code="not_replayable")
        run = rt.runs.new_attempt_steps(record.run_id)
        await self._launch(run)
        return run

    async def resume_unstarted(self) -> int:
        """Launch runs recorded but never handed to DBOS (a crash between the two writes)."""
        rt = runtime()
        with rt.runs.engine.connect() as conn:
            ids = conn.execute(sa.select(runs.c.id).where(runs.c.process == PROCESS,
                                                          runs.c.status.in_(("queued", "running")))).scalars().all()
        for run_id in ids:
            run = rt.runs.get(run_id)
            if run is not None:
                await self._launch(run)
        return len(ids)

    async def _launch(self, run: Run) -> None:
        with SetWorkflowID(workflow_id(run.id, run.attempt)):
            await DBOS.start_workflow_async(provision, run.id, run.subject, run.attempt)

    def _idempotent_run(self, key: str, fingerprint: str) -> Run | None:
        rt = runtime()
        with rt.runs.engine.connect() as conn:
            row = conn.execute(sa.select(idempotency_keys).where(
                idempotency_keys.c.scope == "provisioning.startRun", idempotency_keys.c.key == key)).mappings().first()
        if row is None:
            return None
        if row["fingerprint"] != fingerprint:
            raise ProblemError(422, "idempotency-key-reused", "Idempotency key reused",
                               "This Idempotency-Key was used with a different request body.",
                               code="idempotency_key_mismatch")
        return rt.runs.get(row["run_id"])

    def _remember(self, key: str, fingerprint: str, run_id: str) -> None:
        try:
            with runtime().runs.engine.begin() as conn:
                conn.execute(idempotency_keys.insert().values(scope="provisioning.startRun", key=key,
                                                              fingerprint=fingerprint, run_id=run_id,
                                                              created_at=utcnow()))
        except sa.exc.IntegrityError:
            pass  # a concurrent request with the same key recorded it first


