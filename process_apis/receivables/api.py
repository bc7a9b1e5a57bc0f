"""Routes of the receivables process API: `/process/receivables/v1`.

The invoices as last read from each ERP (status, paid, due), the polls that read them, and their
exceptions. Legal-entity grant: a restricted caller lists and reads its entities' invoices only
(another's is a 404); a poll reads every entity's ERP, so it belongs to no single entity — a
restricted caller cannot start one (403) and sees none of its runs or exceptions.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter

from contracts.billing import InvoiceStatus
from contracts.common import ENTITY_CODE, IDEMPOTENCY_KEY_PATTERN, Page
from contracts.problems import ProblemError
from contracts.receivables import ReceivableInvoice, StartPoll
from contracts.runs import Run
from foundation.grants import Grant, entity_grant
from foundation.paging import decode_cursor, encode_cursor
from process_apis._internal.grants import Visibility
from process_apis._internal.routes import Cursor, Limit, Op, constant, record_routes, replay_route
from process_apis.receivables.runtime import runtime
from process_apis.receivables.service import ReceivablesService
from process_apis.receivables.workflow import PROCESS

__all__ = ["API", "BASE", "receivables_router"]

API = "process.receivables"
BASE = "/process/receivables/v1"
IdempotencyKey = Annotated[str, HeaderParameter(
    name="Idempotency-Key", min_length=8, max_length=255, pattern=IDEMPOTENCY_KEY_PATTERN,
    description="Unique per intended start; a retry sends the same key.")]
LegalEntity = Annotated[str | None, QueryParameter(pattern=f"^{ENTITY_CODE}$", description="A legal entity's code.")]


def _accepted(run: Run, started: bool) -> Response[Run]:
    return Response(run, status_code=202 if started else 200, headers={"Location": f"{BASE}/runs/{run.id}"})


async def _replay(service: ReceivablesService, exception_id: str) -> Response[Run]:
    return _accepted(await service.replay(exception_id), True)


async def _firm_wide(subject: str) -> str | None:
    return None  # a poll reads every legal entity's ERP


async def _visibility(request: Request[Any, Any, Any]) -> Visibility:
    return Visibility(Grant(entity_grant(request, outside_gateway=None)), run_entity=_firm_wide)


def receivables_router(service: ReceivablesService) -> Router:
    existing = {200: ResponseSpec(data_container=Run,
                                  description="A poll is already running, or this key already started one.")}

    @post("/runs", operation_id="receivables.startRun", status_code=202, responses=existing,
          summary="Read invoice status and payments back from every legal entity's ERP")
    async def start_run(service: NamedDependency[ReceivablesService], visibility: NamedDependency[Visibility],
                        data: JSONBody[StartPoll], idempotency_key: IdempotencyKey) -> Response[Run]:
        if visibility.restricted:
            visibility.grant.require(None)  # it reads every entity's ERP
        return _accepted(*await service.start(data.full, idempotency_key))

    @get("/invoices", operation_id="receivables.listInvoices",
         summary="List invoices with their status, paid and due amounts as last read from the ERP")
    async def list_invoices(visibility: NamedDependency[Visibility], legal_entity: LegalEntity = None,
                            status: Annotated[InvoiceStatus | None, QueryParameter()] = None,
                            customer_id: Annotated[str | None, QueryParameter(max_length=120)] = None,
                            limit: Limit = 50, cursor: Cursor = None) -> Page[ReceivableInvoice]:
        grant = visibility.grant
        if legal_entity is not None:
            grant.require(legal_entity)
        entities = frozenset({legal_entity}) if legal_entity else grant.entities
        offset = decode_cursor(cursor, "receivables.invoices")
        rows = runtime().state.list(entities, status, customer_id, limit + 1, offset)
        following = encode_cursor(offset + limit, "receivables.invoices") if len(rows) > limit else None
        return Page(items=rows[:limit], next_cursor=following)

    @get("/invoices/{external_id:str}", operation_id="receivables.getInvoice",
         summary="Get an invoice's status, paid and due amounts as last read from the ERP")
    async def get_invoice(visibility: NamedDependency[Visibility],
                          external_id: Annotated[str, PathParameter(max_length=120)]) -> ReceivableInvoice:
        found = runtime().state.get(external_id)
        if found is None or not visibility.grant.allows(found.legal_entity_code):
            raise ProblemError(404, "not-found", "Not found", f"No invoice {external_id!r} has been read back.",
                               code="not_found")
        return found

    records = record_routes(
        PROCESS, runs_path="/runs", list_runs=Op("receivables.listRuns", "List receivables polls"),
        get_run=Op("receivables.getRun", "Get a poll with its progress"),
        list_exceptions=Op("receivables.listExceptions", "List receivables exceptions"),
        get_exception=Op("receivables.getException", "Get an exception"))
    replay = replay_route(Op("receivables.replayException", "Poll again after the ERP behind an exception is back"),
                          Response[Run], _replay)

    return Router(path=BASE, opt={"api": API}, tags=["receivables"],
                  dependencies={"service": constant(service), "runtime": Provide(runtime, sync_to_thread=False),
                                "visibility": Provide(_visibility)},
                  route_handlers=[start_run, list_invoices, get_invoice, *records.runs, *records.exceptions,
                                  replay])
