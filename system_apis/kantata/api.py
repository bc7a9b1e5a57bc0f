"""The PSA system API on Kantata OX: delivery projects are workspaces, milestones are stories.

Idempotent upsert by external id — why it cannot create two workspaces:
the external id lives in a Kantata external reference (service_name "psconnect",
service_model "project", service_model_ref = external id), and it is created *nested in
the same POST* as the workspace (`workspace.external_reference`), so the workspace and
the key that finds it again come into existence together or not at all. A crash or a
lost response after that POST leaves a workspace that the next run's lookup
(`GET /external_references.json?service_model_ref=…`) finds and updates. The
alternative — create the workspace, then POST the reference — has a window where a crash
leaves an orphan no lookup can find, and the re-run creates a second workspace.
Every later step is itself re-runnable: the client company group is found by name
before being created, the ERP reference is a create-or-update, and milestones are
matched by title + due date, so a re-run adds only the missing ones.
A re-run that finds the half-done workspace answers "updated" (200), not "created".

Concurrent upserts of one external id are serialised per process by a lock; across
processes the caller (the provisioning workflow, keyed by workflow id) must not run
two at once — Kantata offers no unique constraint to fall back on.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import httpx
import msgspec
from litestar import Router

from contracts.common import Page
from contracts.problems import FieldError, ProblemError
from contracts.psa import PsaProject, PsaProjectUpsert
from foundation.paging import encode_position
from foundation.retry import RetryPolicy
from system_apis._internal.http import VendorRejected
from system_apis.domains.psa import psa_router
from system_apis.domains.time import time_router
from system_apis.kantata._delivery_api import (
    Cursor,
    KantataDelivery,
    decode_cursor,
    not_found,
    unprocessable,
    workspace_of,
)
from system_apis.kantata._expense_mapping import expense_choice_ids, expense_terms_of
from system_apis.kantata._time_api import KantataTime
from system_apis.kantata.client import VENDOR, KantataClient, KantataPage
from system_apis.kantata.mapping import (
    ERP_SERVICE_NAME,
    MappingError,
    external_reference,
    milestone_key,
    milestone_to_story,
    project_to_workspace,
    workspace_to_project,
)
from system_apis.registry import Connection

__all__ = ["KantataPsa", "KantataTime", "create_router", "create_systems"]

_INCLUDE = ["external_references", "workspace_groups", "custom_field_values"]
"""A workspace page brings its references, company group and custom field values (the expense terms) in one call."""


class KantataPsa(KantataDelivery):
    """`PsaSystem` on Kantata OX (projects here; staffing, rate cards, users, time in `_delivery_api.py`).

    A project's `rate_card_id` is the canonical rate card id (RC-...), read through the rate
    card's external reference; on upsert, None leaves the workspace's rate card as it is
    (Kantata gives every workspace the account's default card).

    A project's `expense_terms` are read from the workspace's custom field values (see
    `_expense_mapping.py` for the fields); the labels of their choices are account settings,
    fetched once for all the workspaces of a page and kept for the adapter's life (a choice's id
    never changes meaning; an id not seen before is fetched). The upsert does not write them:
    `PsaProjectUpsert` carries no expense terms, the contract's owner keeps them in Kantata.
    """

    def __init__(self, client: KantataClient) -> None:
        self.client = client
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._choice_labels: dict[str, str] = {}

    async def _projects(self, page: KantataPage) -> list[PsaProject]:
        ids = [str(w["id"]) for w in page.records]
        stories: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if ids:
            async for story in self.client.iter_stories(ids):
                stories[str(story["workspace_id"])].append(story)
        cards = await self.rate_card_codes({str(w.get("rate_card_id") or "") for w in page.records})
        values = {str(w["id"]): page.associated(w, "custom_field_values", "custom_field_value_ids")
                  for w in page.records}
        missing = sorted({i for vs in values.values() for i in expense_choice_ids(vs)} - self._choice_labels.keys())
        if missing:
            self._choice_labels.update(await self.client.custom_field_choice_labels(missing))
        try:
            return [msgspec.structs.replace(workspace_to_project(
                w, external_references=page.associated(w, "external_references", "external_reference_ids"),
                workspace_groups=page.associated(w, "workspace_groups", "workspace_group_ids"),
                stories=stories[str(w["id"])]), rate_card_id=cards.get(str(w.get("rate_card_id") or "")),
                expense_terms=expense_terms_of(w, values[str(w["id"])], self._choice_labels))
                for w in page.records]
        except MappingError as exc:
            raise VendorRejected(VENDOR, f"unreadable workspace record: {exc}", status=502) from exc

    async def list_projects(self, external_id: str | None, limit: int, cursor: str | None) -> Page[PsaProject]:
        if external_id is not None:
            found = await workspace_of(self.client, external_id)
            return Page(items=[await self.get_project(found)] if found else [])
        position = decode_cursor(cursor, limit, "projects")
        page = await self.client.list_workspaces(page=position.page, per_page=position.per_page, include=_INCLUDE)
        following = Cursor(page=position.page + 1, per_page=position.per_page)
        return Page(items=await self._projects(page),
                    next_cursor=encode_position(following, "psa.projects") if page.has_next else None)

    async def get_project(self, project_id: str) -> PsaProject:
        if not project_id.isdigit():  # Kantata ids are numeric; anything else cannot exist
            raise not_found("workspace", project_id)
        return (await self._projects(await self.client.get_workspace(project_id, include=_INCLUDE)))[0]

    async def _company_id(self, name: str) -> str | None:
        if not name.strip():
            return None
        found = await self.client.find_company(name.strip())
        return str((found or await self.client.create_company(name.strip()))["id"])

    async def upsert_project(self, external_id: str, data: PsaProjectUpsert) -> tuple[PsaProject, bool]:
        async with self._locks[external_id]:
            try:
                return await self._upsert(external_id, data)
            except MappingError as exc:
                raise unprocessable(exc) from exc

    async def _upsert(self, external_id: str, data: PsaProjectUpsert) -> tuple[PsaProject, bool]:
        currency = data.budget.currency
        stories = [milestone_to_story(m, "", currency=currency, terms=data.billing_terms, index=i)
                   for i, m in enumerate(data.milestones)]  # validate every milestone before writing
        project_to_workspace(data, workspace_group_id=None)
        rate_card = await self.rate_card_kantata_id(data.rate_card_id) if data.rate_card_id else None
        if data.rate_card_id and rate_card is None:
            raise ProblemError(422, "validation-error", "Validation failed", f"No rate card {data.rate_card_id!r}.",
                               errors=[FieldError(pointer="/rate_card_id", detail="unknown rate card")],
                               code="unknown_rate_card")
        workspace_id = await workspace_of(self.client, external_id)
        attributes = project_to_workspace(data, workspace_group_id=await self._company_id(data.client_name))
        if rate_card is not None:
            attributes["rate_card_id"] = rate_card
        created = workspace_id is None
        if workspace_id is None:
            attributes["external_reference"] = external_reference(external_id)
            attributes["creator_role"] = "maven"
            workspace_id = str((await self.client.create_workspace(attributes)).records[0]["id"])
        else:
            await self.client.update_workspace(workspace_id, attributes)
        if data.erp_project_id:
            await self.client.save_external_reference({
                "subject_type": "Workspace", "subject_id": workspace_id,
                **external_reference(data.erp_project_id, ERP_SERVICE_NAME)})
        existing = {milestone_key(str(s.get("title", "")), s.get("due_date")): s
                    async for s in self.client.iter_stories([workspace_id]) if s.get("story_type") == "milestone"}
        for story in stories:
            story["workspace_id"] = workspace_id
            match = existing.get(milestone_key(story["title"], story["due_date"]))
            if match is None:
                await self.client.create_story(story)
            elif any(match.get(k) != v for k, v in story.items() if k != "workspace_id"):
                await self.client.update_story(str(match["id"]), {k: v for k, v in story.items()
                                                                  if k != "workspace_id"})
        return await self.get_project(workspace_id), created


def create_router(http: httpx.AsyncClient, *, token: str = "sim-token", retry: RetryPolicy | None = None) -> Router:
    """The `/system/psa/v1` and `/system/time/v1` routes backed by the Kantata account reached through `http`."""
    client = KantataClient(http, token=token, retry=retry)
    return Router(path="/", route_handlers=[psa_router(KantataPsa(client)), time_router(KantataTime(client))])


def create_systems(http: httpx.AsyncClient, connection: Connection, *,
                   retry: RetryPolicy | None = None) -> dict[str, object]:
    """The psa and time adapters on one Kantata account (`connection`: token, tenant, pacing), one client."""
    client = KantataClient(http, token=connection.credential("token", "sim-token"), retry=retry)
    return {"psa": KantataPsa(client), "time": KantataTime(client)}
