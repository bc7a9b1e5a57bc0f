"""Idempotency keys of the operations that start a run: one key, one body, one run.

A retried start with the same key and body answers the run the first call started; the
same key with another body is refused (422), so a client bug cannot pass for a retry.
The same table holds, per scope, two rows of a process that runs one at a time: the slot
naming its unfinished run, and a follow-up wanted after it.
"""

from __future__ import annotations

import sqlalchemy as sa

from contracts.problems import ProblemError
from foundation.clock import utcnow
from foundation.db import insert_new
from process_apis._internal.runs import UNFINISHED
from process_apis._internal.tables import idempotency_keys, runs

__all__ = ["StartKeys"]


class StartKeys:
    def __init__(self, engine: sa.Engine, scope: str) -> None:
        self.engine = engine
        self.scope = scope

    def earlier_run(self, key: str, fingerprint: str) -> str | None:
        """The run this key started, if any; 422 when the key came with another body."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(idempotency_keys).where(
                idempotency_keys.c.scope == self.scope, idempotency_keys.c.key == key)).mappings().first()
        if row is None:
            return None
        if row["fingerprint"] != fingerprint:
            raise ProblemError(422, "idempotency-key-reused", "Idempotency key reused",
                               "This Idempotency-Key was used with a different request body.",
                               code="idempotency_key_mismatch")
        return str(row["run_id"])

    def remember(self, key: str, fingerprint: str, run_id: str) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(idempotency_keys.insert().values(scope=self.scope, key=key, fingerprint=fingerprint,
                                                              run_id=run_id, created_at=utcnow()))
        except sa.exc.IntegrityError:
            pass  # a concurrent request with the same key recorded it first

    # A follow-up is one more run wanted after the one in flight, which may have read past what a caller (a
    # vendor's change event) knows changed. One row at most: wanting it again while it is pending adds nothing.
    _FOLLOW_UP = "follow-up"

    def want_follow_up(self, run_id: str) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(idempotency_keys.insert().values(scope=self.scope, key=self._FOLLOW_UP,
                                                              fingerprint=self._FOLLOW_UP, run_id=run_id,
                                                              created_at=utcnow()))
        except sa.exc.IntegrityError:
            pass  # already wanted: the one follow-up reads this change too

    def follow_up_wanted(self) -> bool:
        with self.engine.connect() as conn:
            return conn.scalar(sa.select(idempotency_keys.c.run_id).where(
                idempotency_keys.c.scope == self.scope, idempotency_keys.c.key == self._FOLLOW_UP)) is not None

    def take_follow_up(self) -> bool:
        """Whether a follow-up was wanted, clearing it: of two callers racing, one alone is told so."""
        with self.engine.begin() as conn:
            taken = conn.execute(idempotency_keys.delete().where(idempotency_keys.c.scope == self.scope,
                                                                 idempotency_keys.c.key == self._FOLLOW_UP))
        return taken.rowcount == 1

    # The slot: the run of a one-at-a-time process that is unfinished. Taken in the transaction that inserts
    # the run, so starts racing on two workers (two webhook deliveries, a schedule and a client) insert one run
    # between them; the others join it.
    _SLOT = "unfinished-run"

    def take_slot(self, conn: sa.Connection, run_id: str) -> bool:
        """Name `run_id` (inserted in `conn`'s transaction) the unfinished run; False while another is."""
        values = {"scope": self.scope, "key": self._SLOT, "fingerprint": self._SLOT, "run_id": run_id,
                  "created_at": utcnow()}
        first = insert_new(conn, idempotency_keys, idempotency_keys.c.scope, idempotency_keys.c.key)
        if conn.execute(first.values(**values)).rowcount == 1:
            return True
        slot = (idempotency_keys.c.scope == self.scope, idempotency_keys.c.key == self._SLOT)
        holder = conn.scalar(sa.select(idempotency_keys.c.run_id).where(*slot))
        if conn.scalar(sa.select(runs.c.status).where(runs.c.id == holder)) in UNFINISHED:
            return False
        # Only from the holder just read: a start that took the slot meanwhile changed it, and this matches nothing.
        return conn.execute(idempotency_keys.update().where(*slot, idempotency_keys.c.run_id == holder)
                            .values(run_id=run_id, created_at=values["created_at"])).rowcount == 1
