"""Kantata OX API v1 endpoints (https://developer.kantata.com/), one method per vendor operation.

The transport half — auth header, the indexed-by-id envelope, paging, the error tree
and the boolean-filter quirk — is in `_wire.py` and re-exported here:

    VendorError
    ├── VendorRateLimited    429 — request rate *and* concurrency (Kantata has one answer for both)
    ├── VendorUnavailable    5xx, timeouts, connection failures
    ├── CircuitOpenError     too many transient failures in a row
    └── VendorRejected       401/403/404/422; `code` = the first error's `type`

Kantata has no idempotency header; idempotent writes rest on external references
(see `api.py`), so POSTs are never retried after a 5xx/timeout — the caller's re-run
of the whole upsert is what is safe. Timesheet decisions are PUTs, and deciding a
submission twice the same way is refused by Kantata, which `api.py` reads as "done".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Final

from system_apis._internal.http import VendorError
from system_apis.kantata._wire import (
    API_PREFIX,
    BASE_URL,
    MAX_PER_PAGE,
    VENDOR,
    Filter,
    KantataPage,
    KantataWire,
    Record,
    classify,
    filter_params,
)

__all__ = ["API_PREFIX", "BASE_URL", "MAX_PER_PAGE", "VENDOR", "KantataClient", "KantataPage", "classify",
           "filter_params"]

def _between(start: dt.date | None, end: dt.date | None) -> str | None:
    """Kantata's `date_performed_between` / `date_expensed_between` (`YYYY-MM-DD:YYYY-MM-DD`); an open side takes
    a far bound."""
    if start is None and end is None:
        return None
    return f"{(start or dt.date(1970, 1, 1)).isoformat()}:{(end or dt.date(2999, 12, 31)).isoformat()}"


class KantataClient(KantataWire):
    """Kantata OX API v1 over `VendorHttp`; requests go wherever `http`'s transport points."""

    # --- workspaces -------------------------------------------------------------------------------

    async def list_workspaces(self, *, page: int = 1, per_page: int = 20, only: list[str] | None = None,
                              archived: bool = False, include: list[str] | None = None) -> KantataPage:
        """List workspaces (projects). Docs: https://developer.kantata.com/#tag/Workspaces/operation/getWorkspaces"""
        return await self.list_page("workspaces", page=page, per_page=per_page,
                                    filters={"only": only, "archived": archived, "include": include})

    async def get_workspace(self, workspace_id: str, *, include: list[str] | None = None) -> KantataPage:
        """Get one workspace. Docs: https://developer.kantata.com/#tag/Workspaces/operation/getWorkspace"""
        return await self._one("GET", "workspaces", f"workspaces/{workspace_id}.json",
                               params=filter_params({"include": include}))

    async def create_workspace(self, attributes: Record, *, include: list[str] | None = None) -> KantataPage:
        """Create a workspace, optionally with a nested `external_reference` (one atomic write).

        Docs: https://developer.kantata.com/#tag/Workspaces/operation/createWorkspace
        """
        return await self._one("POST", "workspaces", "workspaces.json", params=filter_params({"include": include}),
                               json={"workspace": attributes})

    async def update_workspace(self, workspace_id: str, attributes: Record) -> KantataPage:
        """Update a workspace. Docs: https://developer.kantata.com/#tag/Workspaces/operation/updateWorkspace"""
        return await self._one("PUT", "workspaces", f"workspaces/{workspace_id}.json", json={"workspace": attributes})

    # --- stories (milestones are stories with story_type "milestone") -----------------------------

    async def iter_stories(self, workspace_ids: list[str]) -> AsyncIterator[Record]:
        """Stories of some workspaces. Docs: https://developer.kantata.com/#tag/Stories/operation/getStories"""
        async for page in self.iterate("stories", filters={"workspace_id": workspace_ids}):
            for record in page.records:
                yield record

    async def create_story(self, attributes: Record) -> Record:
        """Create a story. Docs: https://developer.kantata.com/#tag/Stories/operation/createStory"""
        return (await self._one("POST", "stories", "stories.json", json={"story": attributes})).records[0]

    async def update_story(self, story_id: str, attributes: Record) -> Record:
        """Update a story. Docs: https://developer.kantata.com/#tag/Stories/operation/updateStory"""
        page = await self._one("PUT", "stories", f"stories/{story_id}.json", json={"story": attributes})
        return page.records[0]

    # --- external references -----------------------------------------------------------------------

    async def find_external_references(self, *, subject_type: str, service_name: str, service_model: str,
                                       service_model_ref: str | list[str] | None = None,
                                       subject_id: str | list[str] | None = None) -> list[Record]:
        """Look up external references; a list filter matches any of its values (comma-separated on the wire).

        A single value matches itself only: Kantata reads a comma in any filter value as a list, so a reference
        given as ``A,B`` would otherwise find the records of ``A`` and of ``B``.
        Docs: https://developer.kantata.com/#tag/External-References
        """
        found: list[Record] = []
        if subject_id == [] or service_model_ref == []:
            return found  # an empty id list would otherwise mean "no filter"
        async for page in self.iterate("external_references", filters={
                "subject_type": subject_type, "service_name": service_name, "service_model": service_model,
                "service_model_ref": service_model_ref, "subject_id": subject_id}):
            found.extend(page.records)
        exact = {field: value for field, value in (("service_model_ref", service_model_ref),
                                                   ("subject_id", subject_id)) if isinstance(value, str)}
        return [r for r in found if all(str(r.get(field)) == value for field, value in exact.items())]

    async def save_external_reference(self, attributes: Record) -> Record:
        """Create or update (by subject + service) an external reference.

        Docs: https://developer.kantata.com/#tag/External-References/operation/createExternalReference
        """
        page = await self._one("POST", "external_references", "external_references.json",
                               json={"external_reference": attributes})
        return page.records[0]

    # --- workspace groups (client companies) ------------------------------------------------------

    async def find_company(self, name: str) -> Record | None:
        """The client company group named `name`. Docs: https://developer.kantata.com/#tag/Workspace-Groups"""
        async for page in self.iterate("workspace_groups", filters={"company": True, "search": name}):
            for record in page.records:
                if str(record.get("name", "")).casefold() == name.casefold():
                    return record
        return None

    async def create_company(self, name: str) -> Record:
        """Create a client company group. Docs: https://developer.kantata.com/#tag/Workspace-Groups"""
        page = await self._one("POST", "workspace_groups", "workspace_groups.json",
                               json={"workspace_group": {"name": name, "company": True}})
        return page.records[0]

    # --- custom fields ------------------------------------------------------------------------------

    async def custom_field_choice_labels(self, choice_ids: list[str]) -> dict[str, str]:
        """Labels of some single/multi custom field choices, by id, up to 200 ids a request.

        Docs: https://developer.kantata.com/tag/Custom-Field-Choices (`for_choice_ids` takes '1,2,...')
        """
        labels: dict[str, str] = {}
        for start in range(0, len(choice_ids), MAX_PER_PAGE):
            chunk = choice_ids[start:start + MAX_PER_PAGE]
            async for page in self.iterate("custom_field_choices", filters={"for_choice_ids": chunk}):
                labels.update({str(r["id"]): str(r.get("label") or "") for r in page.records})
        return labels

    # --- users / connectivity ------------------------------------------------------------------------

    async def me(self) -> Record:
        """The authenticated user. Docs: https://developer.kantata.com/#tag/Users/operation/getMe"""
        return (await self._one("GET", "users", "users/me.json")).records[0]

    async def check(self) -> bool:
        """Connectivity probe: the token is accepted and the API answers."""
        try:
            await self.me()
        except VendorError:
            return False
        return True

    # --- roles and rate cards ------------------------------------------------------------------------

    async def list_roles(self) -> list[Record]:
        """Account roles (Developer, Senior Consultant...). Docs: https://developer.kantata.com/kantata/specification/roles"""
        return [r async for page in self.iterate("roles") for r in page.records]

    async def list_rate_cards(self, *, page: int = 1, per_page: int = 20, only: list[str] | None = None,
                              include: list[str] | None = None) -> KantataPage:
        """Rate cards, one per currency of a rate card set. Docs: https://developer.kantata.com/kantata/specification/rate-cards-(multiple-currencies)"""
        return await self.list_page("rate_cards", page=page, per_page=per_page,
                                    filters={"only": only, "include": include})

    async def iter_rate_card_versions(self, rate_card_ids: list[str]) -> AsyncIterator[Record]:
        """Versions (effective dates) of some rate cards. Docs: https://developer.kantata.com/kantata/specification/rate-card-versions"""
        async for page in self.iterate("rate_card_versions", filters={"rate_card_id": rate_card_ids}):
            for record in page.records:
                yield record

    async def iter_rate_card_roles(self, version_ids: list[str]) -> AsyncIterator[tuple[Record, Record | None]]:
        """Bill rate per role of some versions, each with its included role.

        Docs: https://developer.kantata.com/kantata/specification/rate-card-role-(rate-for-a-role)
        """
        async for page in self.iterate("rate_card_roles", filters={"rate_card_version_id": version_ids,
                                                                    "include": ["role"]}):
            roles = page.included.get("roles", {})
            for record in page.records:
                yield record, roles.get(str(record.get("role_id")))

    # --- staffing: workspace resources and their allocations ----------------------------------------

    async def list_workspace_resources(self, *, page: int = 1, per_page: int = 20,
                                       workspace_ids: list[str] | None = None) -> KantataPage:
        """Named resources: a user in a role on a workspace, with user and role included.

        Docs: https://developer.kantata.com/kantata/specification/Workspace-Resources
        """
        return await self.list_page("workspace_resources", page=page, per_page=per_page,
                                    filters={"workspace_id": workspace_ids, "include": ["user", "role"]})

    async def iter_workspace_allocations(self, resource_ids: list[str]) -> AsyncIterator[Record]:
        """Allocations (dates and minutes) of some resources. Docs: https://developer.kantata.com/kantata/specification/workspace-allocations"""
        async for page in self.iterate("workspace_allocations", filters={"resource_id": resource_ids}):
            for record in page.records:
                yield record

    # --- users ---------------------------------------------------------------------------------------

    async def get_user(self, user_id: str) -> Record:
        """One user. Docs: https://developer.kantata.com/kantata/specification/users/get-user"""
        return (await self._one("GET", "users", f"users/{user_id}.json")).records[0]

    async def create_user(self, attributes: Record) -> Record:
        """Create a user, with a nested `external_reference` (one atomic write). Docs: https://developer.kantata.com/kantata/specification/users"""
        return (await self._one("POST", "users", "users.json", json={"user": attributes})).records[0]

    async def update_user(self, user_id: str, attributes: Record) -> Record:
        """Update a user. Docs: https://developer.kantata.com/kantata/specification/users"""
        return (await self._one("PUT", "users", f"users/{user_id}.json", json={"user": attributes})).records[0]

    # --- time entries ----------------------------------------------------------------------------------

    async def list_time_entries(self, *, page: int = 1, per_page: int = 20, approved: bool = False,
                                start: dt.date | None = None, end: dt.date | None = None,
                                workspace_ids: list[str] | None = None) -> KantataPage:
        """Time entries with user, workspace, story and submission included.

        `approved` is a presence filter (any value means true), so only True is ever sent.
        Docs: https://developer.kantata.com/kantata/specification/time-entries/get-time-entries
        """
        filters: dict[str, Filter] = {"approved": approved, "date_performed_between": _between(start, end),
                                      "workspace_id": workspace_ids, "include": _TIME_INCLUDE}
        return await self.list_page("time_entries", page=page, per_page=per_page, filters=filters)

    async def get_time_entry(self, entry_id: str) -> KantataPage:
        """One time entry with its associations. Docs: https://developer.kantata.com/kantata/specification/time-entries"""
        return await self._one("GET", "time_entries", f"time_entries/{entry_id}.json",
                               params=filter_params({"include": _TIME_INCLUDE}))

    async def create_time_entry(self, attributes: Record) -> Record:
        """Log time (workspace_id, user_id, date_performed, time_in_minutes, billable...).

        Docs: https://developer.kantata.com/kantata/specification/time-entries/create-time-entry
        """
        page = await self._one("POST", "time_entries", "time_entries.json", json={"time_entry": attributes})
        return page.records[0]

    async def update_time_entry(self, entry_id: str, attributes: Record) -> Record:
        """Change a time entry (Kantata keeps the id). Docs: https://developer.kantata.com/kantata/specification/time-entries"""
        page = await self._one("PUT", "time_entries", f"time_entries/{entry_id}.json",
                               json={"time_entry": attributes})
        return page.records[0]

    # --- expenses --------------------------------------------------------------------------------------

    async def list_expenses(self, *, page: int = 1, per_page: int = 20, approved: bool = False,
                            start: dt.date | None = None, end: dt.date | None = None,
                            workspace_ids: list[str] | None = None) -> KantataPage:
        """Expenses with their user, workspace and active expense report submission included.

        `approved` ("on approved expense reports, or on a workspace that does not require approvals") is a
        presence filter like every Kantata boolean, so only True is ever sent.
        Docs: https://developer.kantata.com/kantata/specification/expenses/get-expenses
        """
        filters: dict[str, Filter] = {"approved": approved, "date_expensed_between": _between(start, end),
                                      "workspace_id": workspace_ids, "include": _EXPENSE_INCLUDE}
        return await self.list_page("expenses", page=page, per_page=per_page, filters=filters)

    async def get_expense(self, expense_id: str) -> KantataPage:
        """One expense with its associations. Docs: https://developer.kantata.com/tag/Expenses"""
        return await self._one("GET", "expenses", f"expenses/{expense_id}.json",
                               params=filter_params({"include": _EXPENSE_INCLUDE}))

    # --- timesheet submissions -------------------------------------------------------------------------

    async def list_timesheet_submissions(self, *, page: int = 1, per_page: int = 20,
                                         status: str | None = None) -> KantataPage:
        """Submissions (one person, one workspace, one period). Docs: https://developer.kantata.com/kantata/specification/timesheet-submissions"""
        return await self.list_page("timesheet_submissions", page=page, per_page=per_page,
                                    filters={"status": status, "include": _SUBMISSION_INCLUDE})

    async def get_timesheet_submission(self, submission_id: str) -> KantataPage:
        """One submission. Docs: https://developer.kantata.com/kantata/specification/timesheet-submissions"""
        return await self._one("GET", "timesheet_submissions", f"timesheet_submissions/{submission_id}.json",
                               params=filter_params({"include": _SUBMISSION_INCLUDE}))

    async def create_timesheet_submission(self, attributes: Record) -> KantataPage:
        """Submit a user's unapproved time on one workspace for a period (a resubmission is a new record).

        Docs: https://developer.kantata.com/kantata/specification/timesheet-submissions
        """
        return await self._one("POST", "timesheet_submissions", "timesheet_submissions.json",
                               params=filter_params({"include": _SUBMISSION_INCLUDE}),
                               json={"timesheet_submission": attributes})

    async def decide_timesheet_submission(self, submission_id: str, decision: str,
                                          comment: str | None = None) -> KantataPage:
        """Approve or reject one submission (`decision` is "approve" or "reject").

        Docs: https://developer.kantata.com/kantata/specification/timesheet-submissions/approve%20timesheet%20submission
        """
        body = {"resolution": {"description": comment}} if comment else {}
        return await self._one("PUT", "timesheet_submissions",
                               f"timesheet_submissions/{submission_id}/{decision}.json",
                               params=filter_params({"include": _SUBMISSION_INCLUDE}), json=body)


_TIME_INCLUDE: Final = ["user", "workspace", "story", "timesheet_submission"]
_SUBMISSION_INCLUDE: Final = ["user", "workspace"]
_EXPENSE_INCLUDE: Final = ["user", "workspace", "active_submission"]
