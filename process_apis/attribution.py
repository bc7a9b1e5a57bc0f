"""Which legal entity a process record belongs to, so a restricted caller sees only its own.

Exceptions carry no entity column: a billing exception's subject names its project
(`<project>:<reason>`, the project's entity per the billing facts) and a billing run's
subject its entity (`<entity>:<period>`). What cannot be attributed this way — a run over
every entity (`*`) — is shown to unrestricted callers only. Used by the process APIs
(`process_apis/_internal/grants.py`) and the workbench alike, so both hide the same records.
"""

from __future__ import annotations

import sqlalchemy as sa

from process_apis.time_to_bill.billing_facts import fact_contracts, fact_entities

__all__ = ["Attribution", "entity_aliases"]


def entity_aliases(conn: sa.Connection) -> dict[str, str]:
    """Every legal entity's code, ERP id and seed id (`LE-<code>`) -> its code (a grant may use any)."""
    rows = [(str(code), str(erp_id)) for code, erp_id in conn.execute(
        sa.select(fact_entities.c.code, fact_entities.c.erp_id))]
    return {**{erp_id: code for code, erp_id in rows}, **{f"LE-{code}": code for code, _ in rows},
            **{code: code for code, _ in rows}}


class Attribution:
    """The grant's view of billing exceptions; `entities` None = unrestricted (sees everything)."""

    def __init__(self, conn: sa.Connection, entities: frozenset[str] | None) -> None:
        self.entities = entities
        self._project_entity: dict[str, str] = {} if entities is None else {
            str(project): str(code) for project, code in conn.execute(
                sa.select(fact_contracts.c.project, fact_contracts.c.legal_entity_code)
                .where(fact_contracts.c.legal_entity_code.in_(sorted(entities))))}

    def visible(self, subject: str, run_subject: str | None) -> bool:
        if self.entities is None:
            return True
        if self._project_entity.get(subject.partition(":")[0]) in self.entities:
            return True
        return run_subject is not None and run_subject.partition(":")[0] in self.entities
