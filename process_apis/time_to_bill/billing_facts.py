"""The billing facts as the time-to-bill process publishes them to the dashboards.

The fact tables are a read model built for reporting (refreshed by the process, see
`facts.py`); experience APIs read them, and the ledger's dead letters, only through this
module. Amounts in the facts are integer units of 1/10,000 (`from_units`).
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa

from process_apis.time_to_bill.facts import (
    fact_contracts,
    fact_entities,
    fact_projects,
    fact_unbilled_days,
    fact_workers,
    from_units,
)
from process_apis.time_to_bill.ledger import ledger

__all__ = [
    "entity_codes",
    "fact_contracts",
    "fact_entities",
    "fact_projects",
    "fact_unbilled_days",
    "fact_workers",
    "failed_lines",
    "from_units",
]


def entity_codes(conn: sa.Connection) -> list[str]:
    """Every legal-entity code the facts know."""
    return list(conn.execute(sa.select(fact_entities.c.code)).scalars())


def failed_lines(conn: sa.Connection, codes: Collection[str]) -> int:
    """Ledger lines of these legal entities that failed to post (dead letters)."""
    if not codes:
        return 0
    return int(conn.execute(sa.select(sa.func.count()).select_from(ledger).where(  # the (entity, state) index
        ledger.c.legal_entity_code.in_(sorted(codes)), ledger.c.state == "failed")).scalar() or 0)
