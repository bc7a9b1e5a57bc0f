"""The finance audit trail as the audit experience API publishes it: one event per action or write."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from msgspec import Meta

from contracts.common import Struct

__all__ = ["AuditEntry"]


class AuditEntry(Struct):
    """One recorded action: who (client, and the person a console page acted for), what, on which records,
    in which legal entity, under which correlation id, and how it ended."""

    id: str
    at: dt.datetime
    actor: Annotated[str, Meta(description="Who acted, as shown: a client id, a person, or `person via client`.")]
    client_id: Annotated[str | None, Meta(description="The OAuth client that called; null for portal actions.")]
    person: Annotated[str | None, Meta(description="The person a console page acted for, when one did.")]
    api: Annotated[str | None, Meta(examples=["process.time_to_bill"])]
    operation_id: Annotated[str | None, Meta(examples=["timeToBill.startBillingRun"])]
    method: str | None
    path: str | None
    entity_type: Annotated[str, Meta(examples=["exception", "billing-run", "project"])]
    entity_id: Annotated[str, Meta(description="The record acted on; empty when the request named none.")]
    action: Annotated[str, Meta(examples=["create", "upsert", "replay", "resolve", "assign"])]
    legal_entity: Annotated[str | None, Meta(description="The legal entity of the records, when known.")]
    correlation_id: str | None
    status: Annotated[int | None, Meta(description="HTTP status of the answer; null for portal actions.")]
    problem_code: Annotated[str | None, Meta(description="The problem's `code` when the request was refused.")]
    records: Annotated[dict[str, list[str]], Meta(description=(
        "Identifiers of the records involved, from the path, the request and the response body."))]
    changes: Annotated[dict[str, list[str | None]], Meta(description="field -> [before, after].")]
