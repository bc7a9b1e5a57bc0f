"""The CloudEvents 1.0 JSON envelope and the event types psconnect publishes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final, Generic, TypeVar

import msgspec
from msgspec import Meta

__all__ = ["CLOSED_WON", "PROJECT_PROVISIONED", "CloudEvent"]

PROJECT_PROVISIONED: Final = "psconnect.project.provisioned"
CLOSED_WON: Final = "psconnect.crm.opportunity.closed_won"

D = TypeVar("D")


class CloudEvent(msgspec.Struct, Generic[D], kw_only=True, forbid_unknown_fields=False):
    """A CloudEvents 1.0 structured-mode JSON event; unknown extension attributes are kept out."""

    specversion: Annotated[str, Meta(pattern=r"^1\.0$")] = "1.0"
    id: Annotated[str, Meta(min_length=1, max_length=200)]
    source: Annotated[str, Meta(min_length=1, max_length=500)]
    type: Annotated[str, Meta(min_length=1, max_length=200, examples=[PROJECT_PROVISIONED])]
    subject: str | None = None
    time: dt.datetime | None = None
    datacontenttype: str = "application/json"
    data: D
