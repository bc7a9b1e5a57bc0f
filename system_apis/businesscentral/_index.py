"""The psconnect extension's ``psconnectRecords``: external ids and the fields Business Central lacks.

One record per (``recordType``, ``recordKey``) — the pair is the table's unique key, so a second insert
of the same pair is refused (``Internal_EntityWithSameKeyExists``) and nothing is created twice. Fields:
``targetId`` (the BC record it describes), ``parentKey`` and ``groupKey`` (filterable: a batch key, a
period, a project's external id), ``recordDate`` (filterable date) and ``data`` (JSON text).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Final

import msgspec

from contracts.problems import ProblemError
from system_apis._internal.http import VendorRejected
from system_apis._internal.instants import utc_text
from system_apis.businesscentral.client import BusinessCentralClient

__all__ = ["EXISTS", "GUID", "RECORDS", "Index", "not_found", "odata_instant", "odata_string", "unprocessable"]

Record = dict[str, Any]
RECORDS: Final = "psconnectRecords"
EXISTS: Final = "Internal_EntityWithSameKeyExists"
GUID: Final = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def odata_string(value: str) -> str:
    """An OData string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def odata_instant(moment: dt.datetime) -> str:
    """An Edm.DateTimeOffset literal at Business Central's resolution (milliseconds, UTC), rounded down.

    Rounding down keeps ``ge`` inclusive: a change stamped in the same millisecond as ``moment`` is kept.
    A naive ``moment`` is taken as UTC.
    """
    return f"{utc_text(moment, 'milliseconds')}Z"


def not_found(kind: str, ident: str) -> ProblemError:
    return ProblemError(404, "not-found", "Not found", f"No {kind} with id {ident!r}.", code="not_found")


def unprocessable(code: str, detail: str, title: str = "Refused by the ERP") -> ProblemError:
    return ProblemError(422, code.replace("_", "-"), title, detail, code=code)


def data_of(record: Record) -> Record:
    try:
        value = msgspec.json.decode(str(record.get("data") or "{}"))
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class Index:
    """Reads and writes ``psconnectRecords`` of the client's company."""

    def __init__(self, client: BusinessCentralClient) -> None:
        self.client = client

    async def url(self, key: str | None = None) -> str:
        return await self.client.url(RECORDS if key is None else f"{RECORDS}({key})", extension=True)

    async def find(self, record_type: str, key: str) -> Record | None:
        return await self.client.find(await self.url(), f"recordType eq {odata_string(record_type)} and "
                                      f"recordKey eq {odata_string(key)}")

    async def by_target(self, record_type: str, target: str) -> Record | None:
        return await self.client.find(await self.url(), f"recordType eq {odata_string(record_type)} and "
                                      f"targetId eq {odata_string(target)}")

    async def put(self, record_type: str, key: str, *, target: str = "", data: Record | None = None,
                  parent: str = "", group: str = "", date: str = "") -> Record:
        """Create the record, or update it when it exists (re-read once on a stale ETag)."""
        body = {"recordType": record_type, "recordKey": key, "targetId": target, "parentKey": parent,
                "groupKey": group, "recordDate": date, "data": msgspec.json.encode(data or {}).decode()}
        existing = await self.find(record_type, key)
        if existing is None:
            try:
                return await self.client.create(await self.url(), body)
            except VendorRejected as exc:
                if exc.code != EXISTS:
                    raise
                existing = await self.find(record_type, key)
                if existing is None:
                    raise
        for attempt in (1, 2):
            try:
                return await self.client.patch(await self.url(existing["id"]), body, existing["@odata.etag"])
            except VendorRejected as exc:
                if exc.status != 412 or attempt == 2:
                    raise
                existing = await self.client.get(await self.url(existing["id"]))
        raise AssertionError("unreachable")
