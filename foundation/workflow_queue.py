"""Where a durable workflow runs: in the process that starts it, or on whichever worker takes it from the queue.

`psconnect serve --role all` (the embedded default) runs a run's workflow in the process
that accepted the request, as soon as it is started. With the roles apart, a gateway
must not run workflows and a worker must be free to take any of them: every start then
goes onto one DBOS queue (`WORK_QUEUE`, in PostgreSQL), which only worker processes
listen to (`gateway/app.py` calls `DBOS.listen_queues([])` on a gateway). The workflow id
stays the run's, so a start repeated by a retry or by two processes is one workflow, and a
queued workflow whose worker dies is put back on the same queue by DBOS's recovery — a
gateway can never pick it up. One DBOS per process, so one setting per process: the
gateway sets it at start-up from its role.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

from dbos import DBOS, SetWorkflowID, WorkflowHandleAsync

__all__ = ["WORK_QUEUE", "run_on_workers", "start_workflow"]

WORK_QUEUE: Final = "psconnect-work"
"""The queue of workflow starts and schedule fires when the roles are apart."""

_R = TypeVar("_R")
_queued = False


def run_on_workers(queued: bool) -> None:
    """Queue every start from now on (roles apart), or run it here (one process does everything)."""
    global _queued
    _queued = queued


async def start_workflow(workflow_id: str, func: Callable[..., Coroutine[Any, Any, _R]],
                         *args: Any) -> WorkflowHandleAsync[_R]:
    """Start `func(*args)` as the workflow `workflow_id`, here or on the work queue; an existing id is that run."""
    with SetWorkflowID(workflow_id):
        if _queued:
            return await DBOS.enqueue_workflow_async(WORK_QUEUE, func, *args)
        return await DBOS.start_workflow_async(func, *args)
