"""What the time-to-bill steps need at run time, set once at assembly (see `process_apis._internal.slots`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import TypeVar

from contracts.common import Page
from foundation.retry import RetryPolicy
from process_apis._internal.events import EventOutbox
from process_apis._internal.exceptions import ExceptionStore
from process_apis._internal.runs import RunStore
from process_apis._internal.slots import RuntimeSlot
from process_apis._internal.steps import retrying, unavailable
from process_apis._internal.system_clients import ErpApi, HrApi, PsaApi, TimeApi, TransientFailure
from process_apis.exchange_rates import DEFAULT_TABLE, RateBook, RateTable
from process_apis.registry import SharedParts
from process_apis.time_to_bill.intercompany import IntercompanyBook, TransferMarkup
from process_apis.time_to_bill.ledger import Ledger
from process_apis.time_to_bill.rules import Reference

__all__ = ["Runtime", "build_runtime", "configure", "pages", "retried", "runtime"]


@dataclass(frozen=True)
class Runtime:
    runs: RunStore
    exceptions: ExceptionStore
    outbox: EventOutbox
    ledger: Ledger
    time: TimeApi
    erp: ErpApi
    psa: PsaApi
    hr: HrApi
    retry: RetryPolicy
    rates: RateBook
    """Converts an expense spent in another currency into its project's (the entity's ERP, else the table)."""
    intercompany: IntercompanyBook
    transfer_markup: TransferMarkup
    page_size: int = 2000
    batch_size: int = 1000
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)
    references: dict[str, Reference] = field(default_factory=dict)
    """Reference data per running billing run, loaded once per run in this process (a cache, not state)."""


def build_runtime(parts: SharedParts) -> Runtime:
    engine, http, token = parts.engine, parts.http, parts.token
    erp = ErpApi(http, token)
    return Runtime(runs=RunStore(engine), exceptions=ExceptionStore(engine), outbox=EventOutbox(engine),
                   ledger=Ledger(engine), time=TimeApi(http, token), erp=erp,
                   psa=PsaApi(http, token), hr=HrApi(http, token), retry=parts.retry,
                   rates=RateBook(engine, erp, parts.rate_table or RateTable.load(DEFAULT_TABLE)),
                   intercompany=IntercompanyBook(engine),
                   transfer_markup=parts.transfer_markup or (lambda _employer, _entity: Decimal(0)))


_slot: RuntimeSlot[Runtime] = RuntimeSlot("time_to_bill")
configure = _slot.set
runtime = _slot.get


T = TypeVar("T")


async def retried(fn: Callable[[], Awaitable[T]], system: str) -> T:
    """A read outside a workflow step: retried like a step's vendor call, then a 503 problem naming `system`.

    A request that reads a system API several times at once (a reconciliation page) meets the system API's spike
    arrest for a moment; that must not throw the request's work away."""
    rt = runtime()
    try:
        return await retrying(fn, retry=rt.retry, sleep=rt.sleep)
    except TransientFailure as exc:
        raise unavailable(exc, system) from exc


async def pages(read: Callable[[dict[str, str | int], str | None], Awaitable[Page[T]]], params: dict[str, str | int],
                system: str) -> AsyncIterator[list[T]]:
    """The items of a cursor-paged list, page by page, each page's read `retried` on its own: a spike arrest met on
    page 300 of a whole account's posted time costs that page again, not the 299 before it."""
    cursor: str | None = None
    while True:
        page = await retried(partial(read, params, cursor), system)
        yield page.items
        if not (cursor := page.next_cursor):
            return
