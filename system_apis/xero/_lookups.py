"""What the Xero adapter looks up by id, shared by its parts: organisation, projects, tasks, user, tracking.

Lookups are cached per adapter (ids never change); a miss reads Xero again, since another gateway
worker may have made the record since. The organisation (its lock date) is read on every use.
A refusal for a locked period comes back as a 422 problem with code ``period_closed``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from contracts.common import Money
from contracts.problems import ProblemError
from system_apis._internal.http import VendorRejected
from system_apis.xero._listing import Listings
from system_apis.xero._summary import (
    SummaryLine,
    SummaryStore,
)
from system_apis.xero.client import ACCOUNTING, PROJECTS, XeroClient, idempotency_key
from system_apis.xero.mapping import (
    PROJECT_TRACKING,
    MappingError,
    project_external_id,
    rate_task_name,
    xero_date,
)

__all__ = ["XeroLookups", "locked", "not_found", "refusal", "vendor_data_invalid"]

T = TypeVar("T")
_LOCK_WORDS: Final = ("lock date", "period lock")


def vendor_data_invalid(exc: MappingError) -> ProblemError:
    """Xero answered, but with a record psconnect cannot read (e.g. made by hand in Xero)."""
    return ProblemError(502, "vendor-data-invalid", "Vendor record unreadable", str(exc), code="vendor_data_invalid")


def not_found(kind: str, ident: str) -> ProblemError:
    return ProblemError(404, "not-found", "Not found", f"No {kind} with id {ident!r}.", code="not_found")


def locked(exc: VendorRejected) -> bool:
    return any(word in str(exc).lower() for word in _LOCK_WORDS)


def refusal(exc: VendorRejected) -> ProblemError | None:
    """Xero's refusal of a write as a problem: a locked period keeps its business meaning (``period_closed``),
    any other validation error is ``validation_failed``; None for what is no refusal of the write (403, 404...)."""
    if locked(exc):
        return ProblemError(422, "period-closed", "Accounting period closed", f"Xero refused the period: {exc}",
                            code="period_closed")
    if exc.status in (400, 422):
        return ProblemError(422, "validation-error", "Refused by the ERP", f"Xero refused the write: {exc}",
                            code="validation_failed")
    return None


class XeroLookups:
    """The base of `XeroErp`'s parts."""

    def __init__(self, client: XeroClient, summaries: SummaryStore, *, connection: str) -> None:
        self.client = client
        self.summaries = summaries
        self.connection = connection
        self._projects_by_eid: dict[str, dict[str, Any]] | None = None
        self._rate_tasks: dict[tuple[str, str], str] = {}
        self._user_id: str | None = None
        self._tracking: tuple[str, set[str]] | None = None
        self.listings = Listings()

    # ------------------------------------------------------------------ shared lookups

    async def _organisation(self) -> dict[str, Any]:
        body = await self.client.get(f"{ACCOUNTING}/Organisation")
        found = body.get("Organisations") or []
        if not found:
            raise vendor_data_invalid(MappingError("Xero answered no organisation for this tenant"))
        return dict(found[0])

    async def _lock_date(self) -> dt.date | None:
        org = await self._organisation()
        return xero_date(org["PeriodLockDate"]) if org.get("PeriodLockDate") else None

    async def _projects(self, *, fresh: bool = False) -> dict[str, dict[str, Any]]:
        if self._projects_by_eid is None or fresh:
            found: dict[str, dict[str, Any]] = {}
            async for page in self.client.projects_pages("/Projects", {"states": "INPROGRESS,CLOSED"}):
                for record in page:
                    external_id = project_external_id(record)
                    if external_id is not None:
                        found[external_id] = dict(record)
            self._projects_by_eid = found
        return self._projects_by_eid

    async def _project_record(self, external_id: str) -> dict[str, Any] | None:
        """The project of an external id; a miss reads Xero again (another worker may have made it since)."""
        found = (await self._projects()).get(external_id)
        return found if found is not None else (await self._projects(fresh=True)).get(external_id)

    def _remember(self, external_id: str, record: dict[str, Any]) -> None:
        if self._projects_by_eid is not None:
            self._projects_by_eid[external_id] = record

    async def _write(self, call: Callable[[], Awaitable[T]]) -> T:
        """A write; Xero's refusal for a locked period keeps its business meaning: ``period_closed``."""
        try:
            return await call()
        except VendorRejected as exc:
            problem = refusal(exc)
            if problem is not None:
                raise problem from exc
            raise

    async def _ensure_tracking_option(self, option: str) -> None:
        """The Project tracking category's option for `option` (Xero refuses a line naming an unknown option)."""
        if self._tracking is None or option not in self._tracking[1]:  # a miss: another worker may have added it
            body = await self.client.get(f"{ACCOUNTING}/TrackingCategories")
            category = next((c for c in body.get("TrackingCategories") or [] if c.get("Name") == PROJECT_TRACKING),
                            None)
            if category is None:
                raise vendor_data_invalid(MappingError(f"Xero has no tracking category {PROJECT_TRACKING!r}"))
            self._tracking = (str(category["TrackingCategoryID"]),
                              {str(o.get("Name")) for o in category.get("Options") or []})
        category_id, options = self._tracking
        if option not in options:
            await self._write(lambda: self.client.request(
                "PUT", f"{ACCOUNTING}/TrackingCategories/{category_id}/Options", json={"Name": option},
                key=idempotency_key("tracking", option)))
            options.add(option)

    async def _user(self) -> str:
        if self._user_id is None:
            body = await self.client.get(f"{PROJECTS}/ProjectsUsers", {"page": 1, "pageSize": 50})
            users = body.get("items") or []
            if not users:
                raise vendor_data_invalid(MappingError("Xero has no projects user to post time as"))
            self._user_id = str(users[0]["userId"])
        return self._user_id

    async def _rate_task(self, project_id: str, line: SummaryLine, rate: Money) -> str:
        name = rate_task_name(rate if line.billable else None)
        if (project_id, name) not in self._rate_tasks:
            async for page in self.client.projects_pages(f"/Projects/{project_id}/Tasks"):
                for task in page:
                    self._rate_tasks[(project_id, str(task.get("name")))] = str(task["taskId"])
            if (project_id, name) not in self._rate_tasks:
                try:
                    task = await self.client.request(
                        "POST", f"{PROJECTS}/Projects/{project_id}/Tasks",
                        json={"name": name, "rate": {"currency": rate.currency,
                                                     "value": rate.amount if line.billable else 0},
                              "chargeType": "TIME" if line.billable else "NON_CHARGEABLE"},
                        key=idempotency_key("task", project_id, name))
                except VendorRejected:  # made meanwhile by another worker: use it
                    async for page in self.client.projects_pages(f"/Projects/{project_id}/Tasks"):
                        for found in page:
                            self._rate_tasks[(project_id, str(found.get("name")))] = str(found["taskId"])
                    if (project_id, name) not in self._rate_tasks:
                        raise
                else:
                    self._rate_tasks[(project_id, name)] = str(task["taskId"])
        return self._rate_tasks[(project_id, name)]
