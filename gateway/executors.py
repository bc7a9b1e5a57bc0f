"""Which process runs a durable workflow, and who finishes the workflows of a process that died.

DBOS stamps every workflow with the executor id of the process running it, and
`DBOS.launch()` recovers the PENDING workflows of its own id. DBOS's default id is
"local" for every process, so with several processes on one database a worker that
starts would re-run the workflows its live siblings are executing (their steps run
twice), and a worker that dies would leave its workflows to whichever starts next.

- Embedded (SQLite, one process): the id stays "local" and start-up recovery
  finishes what a crashed run left, as it always did. Nothing here runs.
- PostgreSQL (any number of processes, on any hosts): each process gets its own id
  (`host-pid-random`, so a restarted process is a new executor) and holds a lease row
  in `workflow_executors`, renewed every `beat` seconds for `ttl` seconds. The lease is
  written before `DBOS.launch()`, so no workflow carries an id without a lease. A lease
  that lapsed means a dead process: a survivor claims it with one UPDATE that re-checks
  the lapse (PostgreSQL row locks let exactly one claimer win), hands its PENDING
  workflows to DBOS's own recovery (`DBOS._recover_pending_workflows`, which re-enqueues
  each for exactly one runner), then deletes the row. The claim renews the lease in
  the claimer's name: if the claimer dies mid-recovery the row lapses again and another
  survivor repeats the (idempotent) recovery.
- Leases are timed by the database clock (`now()`), never a host's, so clock skew
  between hosts cannot expire a live process. A stopped process (graceful or not)
  lets its lease lapse rather than ending it: DBOS does not stop a running step on
  shutdown, and a takeover before the process is gone could run that step twice.
- A process stalled longer than `ttl` is taken for dead and its workflows move on
  (DBOS fences its late step writes by owner); when it wakes it logs the takeover and
  takes a lease again for the workflows it starts from then on.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from dbos import DBOS

from foundation.db import metadata
from gateway.settings import Settings

__all__ = ["Executors", "workflow_executors"]

log = logging.getLogger("psconnect.executors")

LEASE_TTL = 15.0
"""Seconds without renewal after which a process is taken for dead (five missed beats)."""
LEASE_BEAT = 3.0
"""Seconds between two renewals of a live process's lease, and between two looks for lapsed ones."""

workflow_executors = sa.Table(
    "workflow_executors",
    metadata,
    sa.Column("executor_id", sa.String(200), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
    sa.Column("claimed_by", sa.String(200), nullable=True),
)


def _recover(executor_ids: Sequence[str]) -> None:
    DBOS._recover_pending_workflows(list(executor_ids))


class Executors:
    """This process's DBOS executor id and, on PostgreSQL, its lease and the recovery of dead executors."""

    def __init__(self, settings: Settings, engine: sa.Engine, *, ttl: float = LEASE_TTL, beat: float = LEASE_BEAT,
                 recover: Callable[[Sequence[str]], None] = _recover) -> None:
        self.engine = engine
        self.shared = settings.workflow_database_url.startswith("postgresql")
        self.ttl, self.beat, self.recover = ttl, beat, recover
        self.executor_id = "local"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.launched = False
        """DBOS is up in this process (readiness asks)."""

    # --- start and stop (the gateway's lifespan) ---------------------------------------
    def configure(self, config: dict[str, Any]) -> dict[str, Any]:
        """The DBOS config with this process's executor id (a fresh one per start on PostgreSQL)."""
        if self.shared:
            self.executor_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
            config = {**config, "executor_id": self.executor_id}
        return config

    def launch(self) -> None:
        """Take the lease, launch DBOS (it recovers only this id's workflows), then watch the other leases."""
        if not self.shared:
            DBOS.launch()
            self.launched = True
            return
        self._stop.clear()
        self.renew()
        DBOS.launch()
        self.launched = True
        self._thread = threading.Thread(target=self._run, name="psconnect-executor-lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (the lease lapses after `ttl`; see the module docstring)."""
        self.launched = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while True:
            try:
                self.sweep()
                self.renew()
            except Exception:  # a database hiccup must not end the lease thread; the next beat retries
                log.exception("executor lease round failed", extra={"fields": {"executor_id": self.executor_id}})
            if self._stop.wait(self.beat):
                return

    # --- the lease -------------------------------------------------------------------
    def _lease_until(self) -> sa.ColumnElement[Any]:
        return sa.func.now() + sa.literal(timedelta(seconds=self.ttl), sa.Interval())

    def renew(self) -> None:
        """Extend this process's lease; take a new one if a survivor took this process for dead."""
        t = workflow_executors
        with self.engine.begin() as conn:
            renewed = conn.execute(t.update().where(t.c.executor_id == self.executor_id, t.c.claimed_by.is_(None))
                                   .values(lease_until=self._lease_until())).rowcount
            if renewed:
                return
            claimed = conn.execute(sa.select(t.c.claimed_by).where(t.c.executor_id == self.executor_id)).first()
            if claimed is not None:
                log.error("this process was taken for dead; its workflows are being recovered elsewhere",
                          extra={"fields": {"executor_id": self.executor_id, "claimed_by": claimed.claimed_by}})
                return
            conn.execute(t.insert().values(executor_id=self.executor_id, host=socket.gethostname(), pid=os.getpid(),
                                           lease_until=self._lease_until(), claimed_by=None))

    def claim_lapsed(self) -> list[str]:
        """Claim every lapsed lease but this process's own; each lease is claimed by exactly one process."""
        t = workflow_executors
        with self.engine.begin() as conn:
            rows = conn.execute(t.update().where(t.c.lease_until < sa.func.now(), t.c.executor_id != self.executor_id)
                                .values(claimed_by=self.executor_id, lease_until=self._lease_until())
                                .returning(t.c.executor_id)).scalars().all()
        return sorted(rows)

    def sweep(self) -> list[str]:
        """Recover the workflows of every executor whose lease lapsed; returns the executors recovered."""
        dead = self.claim_lapsed()
        if not dead:
            return []
        log.warning("recovering the workflows of dead executors",
                    extra={"fields": {"executor_id": self.executor_id, "dead": dead}})
        self.recover(dead)
        t = workflow_executors
        with self.engine.begin() as conn:
            conn.execute(t.delete().where(t.c.executor_id.in_(dead), t.c.claimed_by == self.executor_id))
        return dead
