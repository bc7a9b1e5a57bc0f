"""Business Central expense posting against the simulator: the journal lines sent, the ledger they post to, and once.

The shared journey (`test_erp_expenses.py`) proves the canonical behaviour; these pin Business Central's side: each
expense is one general journal line in psconnect's own batch (`PSCEXPENSE`, balanced to the payable account) with
its project, key, memo, original amount and receipt where the line has room, posted by the journal's
`Microsoft.NAV.post` into two G/L entries (a reversal into credit ones); per-line refusals before anything is
written, and Business Central's own refusal at posting withdrawing only its line; a lost answer, a 5xx or a failed
post retried without entering or posting any line twice. Every exchange is checked against the vendored API
document, as in `test_businesscentral.py`, except `generalLedgerEntries` (its v1.0 `id` is an integer, v2.0's a
GUID with the number in `entryNumber`), checked here against the v2.0 documentation's fields.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contracts.billing import ExpensePostingBatch, ExpensePostingLine
from contracts.common import Money
from contracts.problems import ProblemError
from system_apis._internal.faults import Fault
from system_apis._internal.http import VendorError
from system_apis.businesscentral import BASE_URL, BusinessCentralClient, BusinessCentralErp
from system_apis.businesscentral._expense_mapping import expense_document_number, refused_line_number
from system_apis.businesscentral.simulator import BusinessCentralSimulator, company_id
from system_apis.domains.erp import erp_router
from tests.integration.system_apis.test_businesscentral import Recording, check_exchange
from tests.integration.system_apis.vendor_kit import PACE, Sleeps, asgi, domain_api, vendor_http

ApiClient = AsyncTestClient[Litestar]
ERP = "/system/erp/v1"
ENTITY = "DE01"
COMPANY = company_id(ENTITY)
OPEN_DAY = "2026-10-15"
CLOSED_DAY = "2026-08-27"
GL_FIELDS = frozenset({"id", "entryNumber", "postingDate", "documentNumber", "documentType", "accountId",
                       "accountNumber", "description", "debitAmount", "creditAmount", "additionalCurrencyDebitAmount",
                       "additionalCurrencyCreditAmount", "lastModifiedDateTime"})
"""generalLedgerEntry (API v2.0): https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/
api-reference/v2.0/resources/dynamics_generalledgerentry"""


@pytest.fixture
def sim() -> BusinessCentralSimulator:
    return BusinessCentralSimulator(legal_entities=(ENTITY,), page_size=40)


@pytest.fixture
def recording(sim: BusinessCentralSimulator) -> Iterator[Recording]:
    recorded = Recording(asgi(sim.app))
    yield recorded
    for request, status, body in recorded.exchanges:
        if "/generalLedgerEntries" in request.url.path:
            assert request.method == "GET"
            if status == 200:
                rows = httpx.Response(200, content=body).json()["value"]
                assert all(set(row) - {"@odata.etag"} <= GL_FIELDS for row in rows), rows
            continue
        check_exchange(request, status, body)


@pytest.fixture
async def http(sim: BusinessCentralSimulator, recording: Recording) -> AsyncIterator[httpx.AsyncClient]:
    async with vendor_http(sim.app, BASE_URL, transport=recording) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, sleeps: Sleeps) -> BusinessCentralClient:
    return BusinessCentralClient(http, retry=PACE, sleep=sleeps, budget=None)


@pytest.fixture
def erp(client: BusinessCentralClient) -> BusinessCentralErp:
    return BusinessCentralErp(client)


@pytest.fixture
async def api(erp: BusinessCentralErp) -> AsyncIterator[ApiClient]:
    async with domain_api(erp_router(erp)) as test_client:
        yield test_client


def _index(sim: BusinessCentralSimulator, record_type: str) -> list[dict[str, Any]]:
    return [r for r in sim.records(ENTITY, "psconnectRecords") if r["recordType"] == record_type]


def _project(sim: BusinessCentralSimulator, n: int = 0) -> str:
    return str(sorted(r["recordKey"] for r in _index(sim, "project"))[n])


def _worker(sim: BusinessCentralSimulator, n: int = 0) -> str:
    active = {e["id"] for e in sim.records(ENTITY, "employees") if e["status"] == "Active"}
    return str(sorted(r["recordKey"] for r in _index(sim, "employee") if r["targetId"] in active)[n])


def _line(sim: BusinessCentralSimulator, key: str, amount: str, *, day: str = OPEN_DAY, project: int = 0,
          worker: int = 0, currency: str = "EUR", **extra: Any) -> dict[str, Any]:
    return {"line_key": key, "project_external_id": _project(sim, project),
            "employee_external_id": _worker(sim, worker), "date": day, "category": "Travel",
            "amount": {"amount": amount, "currency": currency}, "billable": True, "memo": f"train fare {key}", **extra}


def _batch(key: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    return {"batch_key": key, "legal_entity_id": ENTITY, "lines": lines}


def _journal(sim: BusinessCentralSimulator, code: str = "PSCEXPENSE") -> dict[str, Any]:
    return next(j for j in sim.records(ENTITY, "journals") if j["code"] == code)


def _journal_lines(sim: BusinessCentralSimulator) -> list[dict[str, Any]]:
    return list(sim.store.lines[COMPANY][_journal(sim)["id"]].values())


def _entries(sim: BusinessCentralSimulator, account: str | None = None) -> list[dict[str, Any]]:
    return [e for e in sim.records(ENTITY, "generalLedgerEntries") if account in (None, e["accountNumber"])]


def _model_batch(sim: BusinessCentralSimulator, key: str, count: int) -> ExpensePostingBatch:
    lines = [ExpensePostingLine(line_key=f"EXP-F{i}:1", project_external_id=_project(sim, i % 3),
                                employee_external_id=_worker(sim, i % 4), date=dt.date(2026, 10, 1 + i % 25),
                                category="Meals", amount=Money(amount=Decimal(f"{20 + i}.15"), currency="EUR"),
                                billable=i % 2 == 0) for i in range(count)]
    return ExpensePostingBatch(batch_key=key, legal_entity_id=ENTITY, lines=lines)


async def _post_until_answered(erp: BusinessCentralErp, batch: ExpensePostingBatch) -> Any:
    """What the process does: retry the step until the ERP answers."""
    for _ in range(80):
        try:
            return await erp.post_expenses(batch)
        except (VendorError, ProblemError):
            continue
    raise AssertionError("the ERP never answered")


class TestWire:
    async def test_each_expense_is_one_journal_line_carrying_project_key_memo_original_amount_and_receipt(
            self, api: ApiClient, sim: BusinessCentralSimulator, recording: Recording) -> None:
        line = _line(sim, "EXP-W1:a", "49.00", original_amount={"amount": "41.37", "currency": "GBP"},
                     receipt_url="https://receipts.example.com/EXP-W1.pdf", category="Mileage")
        response = await api.post(f"{ERP}/expense-postings", json=_batch("EXPB-W0001", [line]))
        assert response.status_code == 200, response.text
        journal = _journal(sim)
        assert journal["balancingAccountNumber"] == "20700" and journal["templateDisplayName"] == "GENERAL"
        sent = [r for r, _, _ in recording.exchanges if r.url.path.endswith("/$batch")]
        body = httpx.Response(200, content=sent[0].content).json()["requests"]
        journal_line = next(op["body"] for op in body if op["url"].endswith("/journalLines"))
        assert journal_line == {
            "accountType": "G/L Account", "accountNumber": "60100", "postingDate": OPEN_DAY,
            "documentNumber": expense_document_number("EXP-W1:a"),
            "externalDocumentNumber": line["project_external_id"],
            "amount": 49.0, "description": f"Mileage {line['employee_external_id']}: train fare EXP-W1:a",
            "comment": "spent 41.37 GBP; receipt https://receipts.example.com/EXP-W1.pdf"}
        assert any(r.url.path.endswith(f"/journals({journal['id']})/Microsoft.NAV.post") for r, _, _ in
                   recording.exchanges)
        assert _journal_lines(sim) == []  # posting empties the batch
        debit, credit = _entries(sim, "60100"), _entries(sim, "20700")
        assert [(e["debitAmount"], e["creditAmount"]) for e in debit] == [(Decimal("49.00"), Decimal(0))]
        assert [(e["debitAmount"], e["creditAmount"]) for e in credit] == [(Decimal(0), Decimal("49.00"))]
        assert response.json()["posted"] == {"EXP-W1:a": debit[0]["id"]}  # the id is the posted cost's G/L entry

    async def test_a_negative_amount_is_the_credit_form_of_the_same_line(
            self, api: ApiClient, sim: BusinessCentralSimulator) -> None:
        await api.post(f"{ERP}/expense-postings", json=_batch("EXPB-R0001", [_line(sim, "EXP-R1:a", "215.40")]))
        response = await api.post(f"{ERP}/expense-postings",
                                  json=_batch("EXPB-R0002", [_line(sim, "EXP-R1:a:rev", "-215.40")]))
        assert response.status_code == 200 and set(response.json()["posted"]) == {"EXP-R1:a:rev"}
        expense = _entries(sim, "60100")
        assert sorted((e["debitAmount"], e["creditAmount"]) for e in expense) == [
            (Decimal(0), Decimal("215.40")), (Decimal("215.40"), Decimal(0))]
        assert sum(e["debitAmount"] - e["creditAmount"] for e in _entries(sim)) == 0
        rows = (await api.get(f"{ERP}/posted-expenses", params={"project_external_id": _project(sim)})).json()
        assert {r["line_key"]: r["amount"]["amount"] for r in rows["items"]} == {"EXP-R1:a": "215.40",
                                                                                "EXP-R1:a:rev": "-215.40"}

    async def test_long_keys_and_memos_fit_the_line_and_read_back_whole(
            self, api: ApiClient, sim: BusinessCentralSimulator) -> None:
        key = "EXP-" + "x" * 150 + ":a"
        line = _line(sim, key, "12.34", memo="m" * 200, receipt_url="https://r.example.com/" + "p" * 400)
        response = await api.post(f"{ERP}/expense-postings", json=_batch("EXPB-L0001", [line]))
        assert response.status_code == 200 and set(response.json()["posted"]) == {key}, response.text
        posted = (await api.get(f"{ERP}/posted-expenses")).json()["items"]
        assert [p["line_key"] for p in posted] == [key]
        assert len(expense_document_number(key)) == 20

    async def test_posted_expenses_page_with_the_cursor_and_filter_by_date(
            self, api: ApiClient, sim: BusinessCentralSimulator) -> None:
        lines = [_line(sim, f"EXP-P{i}:a", "10.00", day=f"2026-10-{10 + i:02d}") for i in range(5)]
        assert (await api.post(f"{ERP}/expense-postings", json=_batch("EXPB-P0001", lines))).status_code == 200
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = (await api.get(f"{ERP}/posted-expenses", params={"limit": "2", **({"cursor": cursor} if cursor
                                                                                     else {})})).json()
            assert len(page["items"]) <= 2
            seen += [p["line_key"] for p in page["items"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        assert sorted(seen) == [f"EXP-P{i}:a" for i in range(5)]
        window = (await api.get(f"{ERP}/posted-expenses", params={"from": "2026-10-11", "to": "2026-10-12"})).json()
        assert sorted(p["line_key"] for p in window["items"]) == ["EXP-P1:a", "EXP-P2:a"]


class TestRefusals:
    async def test_each_rule_refuses_its_line_only_and_writes_nothing_for_it(
            self, api: ApiClient, sim: BusinessCentralSimulator) -> None:
        closed_project = _project(sim, 1)
        record = next(r for r in _index(sim, "project") if r["recordKey"] == closed_project)
        record["data"] = record["data"].replace('"status":"active"', '"status":"closed"')
        leaver = _worker(sim, 2)
        target = next(r["targetId"] for r in _index(sim, "employee") if r["recordKey"] == leaver)
        next(e for e in sim.records(ENTITY, "employees") if e["id"] == target)["status"] = "Inactive"
        foreign = await api.put(f"{ERP}/projects/by-external-id/PRJ-USD-1", json={
            "name": "Dollar project", "customer_id": (await api.get(f"{ERP}/projects", params={
                "external_id": _project(sim)})).json()["items"][0]["customer_id"], "legal_entity_id": ENTITY,
            "currency": "USD", "budget": {"amount": "1000.00", "currency": "USD"}})
        assert foreign.status_code == 201, foreign.text
        lines = [_line(sim, "EXP-OK:a", "60.00"),
                 _line(sim, "EXP-CL:a", "130.00", day=CLOSED_DAY),
                 {**_line(sim, "EXP-NP:a", "1.00"), "project_external_id": "PRJ-NONE"},
                 _line(sim, "EXP-XP:a", "1.00", project=1),
                 {**_line(sim, "EXP-IW:a", "1.00"), "employee_external_id": leaver},
                 {**_line(sim, "EXP-NW:a", "1.00"), "employee_external_id": "W-NOBODY"},
                 _line(sim, "EXP-CU:a", "1.00", currency="USD"),
                 {**_line(sim, "EXP-FX:a", "1.00", currency="USD"), "project_external_id": "PRJ-USD-1"}]
        response = await api.post(f"{ERP}/expense-postings", json=_batch("EXPB-X0001", lines))
        assert response.status_code == 200, response.text
        result = response.json()
        assert set(result["posted"]) == {"EXP-OK:a"}
        assert result["refusals"] == {"EXP-CL:a": "period_closed", "EXP-NP:a": "project_inactive",
                                      "EXP-XP:a": "project_inactive", "EXP-IW:a": "worker_inactive",
                                      "EXP-NW:a": "worker_inactive", "EXP-CU:a": "validation",
                                      "EXP-FX:a": "validation"}
        assert set(result["failed"]) == set(result["refusals"])
        assert [r["recordKey"] for r in _index(sim, "expenseLine")] == ["EXP-OK:a"]
        assert len(_entries(sim)) == 2
        assert (await api.get(f"{ERP}/expense-postings/EXPB-X0001")).json() == result

    async def test_a_malformed_amount_refuses_the_batch_before_anything_is_written(
            self, api: ApiClient, sim: BusinessCentralSimulator, recording: Recording) -> None:
        lines = [_line(sim, "EXP-M1:a", "10.00"), _line(sim, "EXP-M2:a", "10.005")]
        response = await api.post(f"{ERP}/expense-postings", json=_batch("EXPB-M0001", lines))
        assert response.status_code == 422 and response.json()["errors"][0]["pointer"] == "/lines/1/amount/amount"
        assert [r for r, _, _ in recording.exchanges if r.method != "GET" and "/api/" in r.url.path] == []
        assert (await api.get(f"{ERP}/expense-postings/EXPB-M0001")).status_code == 404

    async def test_business_centrals_refusal_at_posting_withdraws_that_line_and_posts_the_rest(
            self, erp: BusinessCentralErp, sim: BusinessCentralSimulator) -> None:
        batch = _model_batch(sim, "EXPB-B0001", 3)
        batch.lines[1] = msgspec.structs.replace(batch.lines[1], date=dt.date(2026, 11, 20))
        sim.faults.add(Fault(kind="server_error", count=1, status=503, method="POST", path=r"Microsoft\.NAV\.post$"))
        with pytest.raises(VendorError):  # entered; the post failed and is never retried blindly
            await erp.post_expenses(batch)
        assert len(_journal_lines(sim)) == 3 and _entries(sim) == []
        sim.close_period(ENTITY, "2026-11", lock=True)  # meanwhile November is date-locked in Business Central
        result = await erp.post_expenses(batch)
        assert result.refusals == {batch.lines[1].line_key: "period_closed"}
        assert set(result.posted) == {batch.lines[0].line_key, batch.lines[2].line_key}
        assert "allowed posting dates" in result.failed[batch.lines[1].line_key]
        assert _journal_lines(sim) == []  # withdrawn, not left to be posted with the next batch
        assert sorted(r["recordKey"] for r in _index(sim, "expenseLine")) == sorted(result.posted)
        assert len(_entries(sim)) == 4

    async def test_a_blocked_expense_account_is_rejected_per_line_and_leaves_nothing(
            self, client: BusinessCentralClient, sim: BusinessCentralSimulator) -> None:
        erp = BusinessCentralErp(client, expense_account="60900")
        result = await erp.post_expenses(_model_batch(sim, "EXPB-K0001", 2))
        assert result.posted == {} and set(result.refusals.values()) == {"rejected"}
        assert all("Blocked" in message for message in result.failed.values())
        assert _journal_lines(sim) == [] and _index(sim, "expenseLine") == [] and _entries(sim) == []

    def test_the_refused_line_is_read_from_either_form_of_business_centrals_message(self) -> None:
        assert refused_line_number("… in Gen. Journal Line: Journal Template Name=GENERAL, Journal Batch "
                                   "Name=PSCEXPENSE, Line No.=20000.") == 20000
        assert refused_line_number("Posting Date is not within your range of allowed posting dates in Gen. Journal "
                                   "Line Journal Template Name='GENERAL',Journal Batch Name='PSCEXPENSE',"
                                   "Line No.='30000'.") == 30000
        assert refused_line_number("The record is locked.") is None

    async def test_an_unknown_batch_is_404(self, api: ApiClient) -> None:
        response = await api.get(f"{ERP}/expense-postings/EXPB-NEVER-1")
        assert response.status_code == 404 and response.json()["code"] == "not_found"


class TestOnce:
    async def test_a_lost_answer_of_the_entering_transaction_enters_nothing_twice(
            self, erp: BusinessCentralErp, sim: BusinessCentralSimulator, recording: Recording) -> None:
        batch = _model_batch(sim, "EXPB-O0001", 60)
        await erp.entity()
        recording.lose_next_answer_of = "/$batch"  # the first transaction commits; its answer is lost
        result = await erp.post_expenses(batch)
        assert set(result.posted) == {line.line_key for line in batch.lines} and not result.failed
        assert len(_index(sim, "expenseLine")) == 60 and len(_entries(sim, "60100")) == 60
        assert set(result.posted.values()) == {e["id"] for e in _entries(sim, "60100")}

    async def test_a_post_whose_answer_was_lost_is_not_posted_again(
            self, erp: BusinessCentralErp, sim: BusinessCentralSimulator, recording: Recording) -> None:
        batch = _model_batch(sim, "EXPB-O0002", 4)
        recording.lose_next_answer_of = "Microsoft.NAV.post"  # Business Central posted; the answer never came
        with pytest.raises(VendorError):
            await erp.post_expenses(batch)
        assert len(_entries(sim, "60100")) == 4
        posts = sum(1 for r, _, _ in recording.exchanges if r.url.path.endswith("Microsoft.NAV.post"))
        result = await erp.post_expenses(batch)
        assert len(result.posted) == 4 and len(_entries(sim, "60100")) == 4
        assert sum(1 for r, _, _ in recording.exchanges if r.url.path.endswith("Microsoft.NAV.post")) == posts

    async def test_under_5xx_and_lost_answers_a_retried_batch_posts_every_line_exactly_once(
            self, erp: BusinessCentralErp, sim: BusinessCentralSimulator, recording: Recording) -> None:
        batch = _model_batch(sim, "EXPB-O0003", 80)
        await erp.entity()
        sim.faults.add(Fault(kind="server_error", status=503, rate=0.15, path="/api/"))
        recording.lose_writes = 0.25
        result = await _post_until_answered(erp, batch)
        sim.faults.clear()
        recording.lose_writes = 0.0
        assert sim.faults.injected > 5 and recording.lost > 0  # the faults did bite
        assert set(result.posted) == {line.line_key for line in batch.lines} and not result.failed
        expense = _entries(sim, "60100")
        assert len(expense) == 80 and len(_index(sim, "expenseLine")) == 80
        assert set(result.posted.values()) == {e["id"] for e in expense}
        assert sum(e["debitAmount"] for e in expense) == sum(line.amount.amount for line in batch.lines)
        again = await erp.post_expenses(batch)
        assert again == result and len(_entries(sim, "60100")) == 80

    async def test_a_line_under_another_batch_key_and_a_repeated_key_in_one_batch_post_once(
            self, api: ApiClient, sim: BusinessCentralSimulator) -> None:
        first = await api.post(f"{ERP}/expense-postings", json=_batch("EXPB-S0001", [_line(sim, "EXP-S1:a", "30.00")]))
        lines = [_line(sim, "EXP-S1:a", "30.00"), _line(sim, "EXP-S2:a", "40.00"), _line(sim, "EXP-S2:a", "40.00")]
        second = await api.post(f"{ERP}/expense-postings", json=_batch("EXPB-S0002", lines))
        assert second.json()["posted"]["EXP-S1:a"] == first.json()["posted"]["EXP-S1:a"]
        assert set(second.json()["posted"]) == {"EXP-S1:a", "EXP-S2:a"}
        assert len(_entries(sim, "60100")) == 2 and len(_index(sim, "expenseLine")) == 2
        assert _journal(sim, "DEFAULT")["id"] not in {line["journalId"] for line in _journal_lines(sim)}
