"""What worker sync last pushed for each worker, and what it would push now.

The fingerprint is a hash of the two payloads a worker turns into — the PSA user and
the ERP employee — so "changed since the last successful sync" means exactly "we
would now send something different". An HR edit that touches neither payload (a
phone number, a termination date on an already inactive worker) costs no vendor
write. A fingerprint is stored only after both upserts succeeded, so a worker whose
sync failed is tried again by the next run without any bookkeeping of failures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import msgspec
import sqlalchemy as sa

from contracts.workforce import EmployeeUpsert, PsaUserUpsert, Worker
from foundation.clock import utcnow
from foundation.db import metadata

__all__ = ["SyncState", "employee_for", "fingerprint", "psa_user_for", "worker_sync_state"]

worker_sync_state = sa.Table(
    "worker_sync_state", metadata,
    sa.Column("worker_id", sa.String(64), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("psa_user_id", sa.String(64), nullable=False),
    sa.Column("erp_employee_id", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(120), nullable=False),
    sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
)


def _active(worker: Worker) -> bool:
    # On leave is still employed: the PSA keeps the user and the ERP the employee; only leavers are deactivated.
    return worker.status != "terminated"


def psa_user_for(worker: Worker) -> PsaUserUpsert:
    return PsaUserUpsert(name=worker.name, email=worker.email, role=worker.role, practice=worker.practice,
                         cost_rate=worker.cost_rate, active=_active(worker))


def employee_for(worker: Worker, legal_entity_id: str) -> EmployeeUpsert:
    return EmployeeUpsert(name=worker.name, email=worker.email, legal_entity_id=legal_entity_id,
                          cost_center=worker.cost_center, cost_rate=worker.cost_rate, active=_active(worker))


def fingerprint(worker: Worker) -> str:
    """Hash of what the worker turns into downstream (the legal entity by code: ERP ids are looked up per run)."""
    payload = msgspec.json.encode([psa_user_for(worker), employee_for(worker, worker.legal_entity_code)])
    return hashlib.sha256(payload).hexdigest()


class SyncState:
    """Fingerprints per worker in the worker_sync_state table."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def fingerprints(self, worker_ids: Iterable[str]) -> dict[str, str]:
        ids = list(worker_ids)
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(worker_sync_state.c.worker_id, worker_sync_state.c.fingerprint)
                                .where(worker_sync_state.c.worker_id.in_(ids))).all()
        return {r.worker_id: r.fingerprint for r in rows}

    def record(self, worker_id: str, print_: str, *, psa_user_id: str, erp_employee_id: str, run_id: str) -> None:
        values = {"fingerprint": print_, "psa_user_id": psa_user_id, "erp_employee_id": erp_employee_id,
                  "run_id": run_id, "synced_at": utcnow()}
        with self.engine.begin() as conn:
            updated = conn.execute(worker_sync_state.update().where(worker_sync_state.c.worker_id == worker_id)
                                   .values(**values)).rowcount
            if not updated:
                conn.execute(worker_sync_state.insert().values(worker_id=worker_id, **values))

    def get(self, worker_id: str) -> dict[str, object] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(worker_sync_state).where(
                worker_sync_state.c.worker_id == worker_id)).mappings().first()
        return dict(row) if row else None

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(worker_sync_state)).scalar_one())
