"""Exception-workbench objects: what finance and operations staff see and do on an exception."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from msgspec import Meta

from contracts.common import Struct
from contracts.runs import ExceptionRecord, Run

__all__ = ["AssignRequest", "AuditEvent", "Comment", "CommentRequest", "ResolveRequest", "WorkbenchDetail",
           "WorkbenchItem", "WorkbenchReplay"]

Actor = Annotated[str, Meta(description="Who acted: a client id or a portal user.")]


class WorkbenchItem(Struct):
    exception: ExceptionRecord
    assignee: str | None
    comment_count: int
    age_hours: Annotated[float, Meta(ge=0, description="Hours since the exception was raised.")]


class Comment(Struct):
    id: str
    exception_id: str
    author: Actor
    text: str
    created_at: dt.datetime


class AuditEvent(Struct):
    id: str
    at: dt.datetime
    actor: Actor
    entity_type: Literal["exception", "application"]
    entity_id: str
    action: Annotated[str, Meta(examples=["assign", "comment", "resolve", "replay", "register", "revoke"])]
    changes: Annotated[dict[str, list[str | None]], Meta(description="field -> [before, after].")]


class WorkbenchDetail(Struct):
    item: WorkbenchItem
    comments: list[Comment]
    audit: list[AuditEvent]


class AssignRequest(Struct):
    assignee: Annotated[str, Meta(min_length=1, max_length=120, pattern=r"^[^\x00-\x1f]+$")]


class CommentRequest(Struct):
    text: Annotated[str, Meta(min_length=1, max_length=4000)]


class ResolveRequest(Struct):
    resolution: Annotated[str, Meta(min_length=3, max_length=2000,
                                    description="Why the exception needs no replay (e.g. fixed in the ERP by hand).")]


class WorkbenchReplay(Struct):
    exception_id: str
    run: Run
