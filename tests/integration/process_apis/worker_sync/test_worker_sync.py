"""Worker sync end to end on DBOS: HR (a vendor's simulator) -> PSA users and ERP employees.

The PSA and ERP system APIs are stood in for by `Downstream` — a recording
implementation of the two upsert routes plus the legal-entity list, with switches
to refuse one worker or go down — so these tests pin what the process sends and
when, independently of the Kantata and NetSuite adapters (their own suites prove
those routes). The HR side is a real HR system API against its vendor's simulator, and the whole suite
runs once per HR vendor (`harness` is parametrised: `workday`, `bamboohr`). What differs between the vendors —
how HR terminates, moves or re-rates a worker or hires one into an unknown company — is in a small
`HrDriver` per vendor; every test body is written once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Protocol

import httpx
import msgspec
import pytest
import sqlalchemy as sa
from dbos import DBOS
from litestar import Litestar, Response, Router, get, put
from litestar.params import JSONBody, PathParameter
from litestar.testing import AsyncTestClient

from contracts.common import Money, Page
from contracts.erp import LegalEntity
from contracts.problems import ProblemError
from contracts.workforce import Employee, EmployeeUpsert, PsaUser, PsaUserUpsert
from foundation.db import create_engine, metadata
from foundation.retry import RetryPolicy
from gateway.errors import EXCEPTION_HANDLERS
from process_apis.registry import SharedParts
from process_apis.worker_sync.api import worker_sync_router
from process_apis.worker_sync.runtime import build_runtime, configure
from process_apis.worker_sync.service import WorkerSyncService
from process_apis.worker_sync.state import SyncState
from system_apis import bamboohr, workday
from system_apis._internal.faults import Fault, FaultPlan
from system_apis.bamboohr.api import REPORT_TTL, BambooHRHr
from system_apis.bamboohr.simulator import BambooHRSimulator
from system_apis.demo_firm import HOME_ENTITIES, LEGAL_ENTITIES
from system_apis.domains.hr import hr_router
from system_apis.workday.simulator import WorkdaySimulator, WorkerChange
from tests.integration.system_apis.vendor_kit import Clock, asgi, vendor_http

BASE = "/process/worker-sync/v1"
TERMINAL = {"succeeded", "needs_attention", "failed"}
ERP_IDS = {le.code: f"{i + 1}" for i, le in enumerate(LEGAL_ENTITIES)}  # NetSuite-style internal ids


@dataclass
class Downstream:
    """The PSA user and ERP employee routes, recording every write."""

    users: dict[str, PsaUserUpsert] = field(default_factory=dict)
    employees: dict[str, EmployeeUpsert] = field(default_factory=dict)
    writes: list[tuple[str, str]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    """worker id -> error code the ERP answers 422 with."""
    down: int = 0
    """PSA calls still to answer 503."""
    throttle: int = 0
    """Calls (PSA or ERP) still to answer 429."""

    def router(self) -> Router:
        ds = self

        def transient() -> None:
            if ds.throttle > 0:
                ds.throttle -= 1
                raise ProblemError(429, "rate-limited", "Too many requests", "slow down",
                                   headers={"Retry-After": "0"})

        @get("/system/erp/v1/legal-entities", sync_to_thread=False)
        def legal_entities() -> Page[LegalEntity]:
            return Page(items=[LegalEntity(**{**{f: getattr(le, f) for f in le.__struct_fields__},
                                              "id": ERP_IDS[le.code]}) for le in LEGAL_ENTITIES])

        @put("/system/psa/v1/users/by-external-id/{external_id:str}", sync_to_thread=False)
        def upsert_user(external_id: Annotated[str, PathParameter()],
                        data: JSONBody[PsaUserUpsert]) -> Response[PsaUser]:
            transient()
            if ds.down > 0:
                ds.down -= 1
                raise ProblemError(503, "vendor-unavailable", "PSA down", "down", headers={"Retry-After": "0"})
            created = external_id not in ds.users
            ds.users[external_id] = data
            ds.writes.append(("psa", external_id))
            return Response(PsaUser(id=f"U{external_id}", external_id=external_id, name=data.name, email=data.email,
                                    role=data.role, practice=data.practice, cost_rate=data.cost_rate,
                                    active=data.active), status_code=201 if created else 200)

        @put("/system/erp/v1/employees/by-external-id/{external_id:str}", sync_to_thread=False)
        def upsert_employee(external_id: Annotated[str, PathParameter()],
                            data: JSONBody[EmployeeUpsert]) -> Response[Employee]:
            transient()
            if external_id in ds.refuse:
                raise ProblemError(422, "vendor-rejected", "Rejected", f"ERP refused {external_id}",
                                   code=ds.refuse[external_id])
            created = external_id not in ds.employees
            ds.employees[external_id] = data
            ds.writes.append(("erp", external_id))
            return Response(Employee(id=f"E{external_id}", external_id=external_id, name=data.name,
                                     email=data.email, legal_entity_id=data.legal_entity_id,
                                     cost_center=data.cost_center, cost_rate=data.cost_rate, active=data.active),
                            status_code=201 if created else 200)

        return Router(path="/", route_handlers=[legal_entities, upsert_user, upsert_employee])


class HrDriver(Protocol):
    """One HR vendor as the suite sees it: its simulator, its system API router, and HR's hand on the data."""

    app: Litestar
    """The simulator's ASGI app."""
    base_url: str
    faults: FaultPlan

    def router(self, http: httpx.AsyncClient, retry: RetryPolicy) -> Router: ...
    def terminate(self, worker_id: str) -> None: ...
    def set_cost_center(self, worker_id: str, cost_center: str) -> None: ...
    def set_cost_rate(self, worker_id: str, rate: Money) -> None: ...
    def hire_into(self, legal_entity_code: str) -> str:
        """Hire a copy of worker W-00003 into `legal_entity_code`; the new worker's id."""
        ...


class WorkdayDriver:
    """Workday: the firm's home entities (its default seed); staffing pages hold 100 workers."""

    base_url = workday.BASE_URL

    def __init__(self) -> None:
        self.sim = WorkdaySimulator()
        self.app, self.faults = self.sim.app, self.sim.faults

    def router(self, http: httpx.AsyncClient, retry: RetryPolicy) -> Router:
        return workday.create_router(http, retry=retry)

    def terminate(self, worker_id: str) -> None:
        self.sim.change_worker(worker_id, WorkerChange(status="terminated"))

    def set_cost_center(self, worker_id: str, cost_center: str) -> None:
        self.sim.change_worker(worker_id, WorkerChange(cost_center=cost_center))

    def set_cost_rate(self, worker_id: str, rate: Money) -> None:
        self.sim.change_worker(worker_id, WorkerChange(cost_rate=rate))

    def hire_into(self, legal_entity_code: str) -> str:
        self.sim.hire(msgspec.structs.replace(self.sim.workers["W-00003"][0], id="W-90001",
                                              legal_entity_code=legal_entity_code))
        return "W-90001"


class BambooHRDriver:
    """BambooHR seeded with the same home entities. Its adapter cuts 100-worker pages from one custom report
    and reuses that report for `REPORT_TTL` seconds, so an HR change shows up to that much later: the adapter
    runs on a clock this driver owns, and every HR change lets that time pass (as it would between syncs)."""

    base_url = bamboohr.BASE_URL

    def __init__(self) -> None:
        self.sim = BambooHRSimulator(legal_entities=HOME_ENTITIES)
        self.app, self.faults = self.sim.app, self.sim.faults
        self.clock = Clock()

    def router(self, http: httpx.AsyncClient, retry: RetryPolicy) -> Router:
        client = bamboohr.BambooHRClient(http, api_key="sim-key", retry=retry)
        return hr_router(BambooHRHr(client, clock=self.clock))

    def _update(self, worker_id: str, **fields: str) -> None:
        self.sim.update(self.sim.employee_id(worker_id), **fields)
        self.clock.now += REPORT_TTL

    def terminate(self, worker_id: str) -> None:
        self._update(worker_id, status="Inactive", employmentHistoryStatus="Terminated",
                     terminationDate=self.sim.now.date().isoformat())

    def set_cost_center(self, worker_id: str, cost_center: str) -> None:
        self._update(worker_id, customCostCenter=cost_center)

    def set_cost_rate(self, worker_id: str, rate: Money) -> None:
        self._update(worker_id, customHourlyCostRate=f"{rate.amount} {rate.currency}")

    def hire_into(self, legal_entity_code: str) -> str:
        template = self.sim.employees[self.sim.employee_id("W-00003")]
        self.sim.hire({**template, "employeeNumber": "W-90001", "division": legal_entity_code})
        self.clock.now += REPORT_TTL
        return "W-90001"


DRIVERS: dict[str, Callable[[], HrDriver]] = {"workday": WorkdayDriver, "bamboohr": BambooHRDriver}


@dataclass
class Harness:
    api: AsyncTestClient[Litestar]
    hr: HrDriver
    downstream: Downstream
    state: SyncState
    engine: sa.Engine

    async def start(self, key: str, **body: Any) -> httpx.Response:
        return await self.api.post(f"{BASE}/runs", json=body, headers={"Idempotency-Key": key})

    async def wait(self, run_id: str, within: float = 60.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            run: dict[str, Any] = (await self.api.get(f"{BASE}/runs/{run_id}")).json()
            if run["status"] in TERMINAL:
                return run
            if loop.time() > deadline:
                raise AssertionError(f"run {run_id} still {run['status']}: {run['steps']}")
            await asyncio.sleep(0.05)

    async def sync(self, key: str, **body: Any) -> dict[str, Any]:
        response = await self.start(key, **body)
        assert response.status_code in (200, 202), response.text
        return await self.wait(response.json()["id"])


async def _no_sleep(_seconds: float) -> None:
    return None


async def _token() -> str:
    return "service-token"


@pytest.fixture(params=list(DRIVERS))
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.sqlite'}")
    metadata.create_all(engine)
    hr = DRIVERS[request.param]()
    downstream = Downstream()
    service = WorkerSyncService()
    async with vendor_http(hr.app, hr.base_url) as hr_http:
        app = Litestar(route_handlers=[hr.router(hr_http, RetryPolicy(max_attempts=2, base_delay=0.001)),
                                       downstream.router(), worker_sync_router(service)],
                       exception_handlers=EXCEPTION_HANDLERS)
        async with httpx.AsyncClient(transport=asgi(app), base_url="http://psconnect.internal") as internal:
            parts = SharedParts(engine=engine, http=internal, token=_token,
                                retry=RetryPolicy(max_attempts=4, base_delay=0.001))
            configure(build_runtime(parts, sleep=_no_sleep, concurrency=4))
            DBOS(config={"name": "psconnect-worker-sync-test",
                         "system_database_url": f"sqlite:///{tmp_path / 'workflows.sqlite'}",
                         "application_version": "worker-sync-test", "log_level": "WARNING"})
            DBOS.launch()
            try:
                async with AsyncTestClient(app=app) as api:
                    yield Harness(api, hr, downstream, SyncState(engine), engine)
            finally:
                await asyncio.to_thread(DBOS.destroy, destroy_registry=False)
                engine.dispose()


def step(run: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in run["steps"] if s["name"] == name)


class TestFirstSync:
    async def test_every_worker_becomes_a_psa_user_and_an_erp_employee(self, harness: Harness) -> None:
        run = await harness.sync("first-sync-0001")
        assert run["status"] == "succeeded", run
        assert [s["state"] for s in run["steps"]] == ["succeeded"] * 4
        assert run["result"] == {"pages": "3", "workers": "240", "changed": "240", "unchanged": "0",
                                 "synced": "240", "failed": "0"}
        assert step(run, "read_hr")["vendor_ids"] == {"pages": "3", "workers": "240"}
        ds = harness.downstream
        assert len(ds.users) == len(ds.employees) == 240 == harness.state.count()
        assert sorted(ds.writes).count(("psa", "W-00001")) == 1
        leaver = ds.employees["W-00097"]
        assert leaver.active is False and ds.users["W-00097"].active is False
        assert ds.employees["W-00002"].legal_entity_id == ERP_IDS["UK01"]
        assert ds.employees["W-00002"].cost_center == "CC-UK01-2"

    async def test_idempotency_key_replays_and_refuses_a_different_body(self, harness: Harness) -> None:
        first = await harness.start("key-sync-0001")
        again = await harness.start("key-sync-0001")
        assert first.status_code == 202 and again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        other = await harness.start("key-sync-0001", full=True)
        assert other.status_code == 422 and other.json()["code"] == "idempotency_key_mismatch"
        await harness.wait(first.json()["id"])

    async def test_a_start_while_a_sync_runs_joins_it(self, harness: Harness) -> None:
        responses = await asyncio.gather(*(harness.start(f"concurrent-{i:04d}") for i in range(4)))
        ids = {r.json()["id"] for r in responses}
        assert len(ids) == 1 and sorted(r.status_code for r in responses) == [200, 200, 200, 202]
        assert (await harness.wait(ids.pop()))["status"] == "succeeded"
        assert len(harness.downstream.writes) == 480  # 240 users + 240 employees, nothing twice

    async def test_missing_idempotency_key_starts_nothing(self, harness: Harness) -> None:
        response = await harness.api.post(f"{BASE}/runs", json={})
        assert response.status_code in (400, 422)
        assert (await harness.api.get(f"{BASE}/runs")).json()["items"] == []


class TestChanges:
    async def test_only_workers_whose_hr_data_changed_are_pushed_again(self, harness: Harness) -> None:
        await harness.sync("changes-0001")
        ds = harness.downstream
        ds.writes.clear()
        quiet = await harness.sync("changes-0002")
        assert quiet["status"] == "succeeded" and quiet["result"]["changed"] == "0" and ds.writes == []

        harness.hr.terminate("W-00010")
        harness.hr.set_cost_center("W-00020", "CC-US01-4")
        harness.hr.set_cost_rate("W-00030", Money(amount=Decimal("101.50"), currency="EUR"))
        run = await harness.sync("changes-0003")
        assert run["result"]["changed"] == "3" and run["result"]["synced"] == "3"
        assert sorted(ds.writes) == sorted([(s, w) for w in ("W-00010", "W-00020", "W-00030") for s in ("psa", "erp")])
        assert ds.employees["W-00010"].active is False and ds.users["W-00010"].active is False
        assert ds.employees["W-00020"].cost_center == "CC-US01-4"
        assert ds.users["W-00030"].cost_rate == ds.employees["W-00030"].cost_rate == \
            Money(amount=Decimal("101.50"), currency="EUR")

    async def test_full_sync_pushes_everyone_again(self, harness: Harness) -> None:
        await harness.sync("full-0001")
        harness.downstream.writes.clear()
        run = await harness.sync("full-0002", full=True)
        assert run["result"]["changed"] == "240" and len(harness.downstream.writes) == 480

    async def test_runs_are_listed_newest_first(self, harness: Harness) -> None:
        first = await harness.sync("list-0001")
        second = await harness.sync("list-0002")
        listed = (await harness.api.get(f"{BASE}/runs")).json()["items"]
        assert [r["id"] for r in listed] == [second["id"], first["id"]]
        assert all(r["process"] == "worker_sync" for r in listed)
        assert (await harness.api.get(f"{BASE}/runs/nope")).status_code == 404


class TestFailures:
    async def test_one_refused_worker_is_an_exception_and_the_others_sync(self, harness: Harness) -> None:
        harness.downstream.refuse["W-00042"] = "invalid_cost_center"
        run = await harness.sync("refuse-0001")
        assert run["status"] == "needs_attention"
        assert run["result"]["synced"] == "239" and run["result"]["failed"] == "1"
        exception = (await harness.api.get(f"{BASE}/exceptions/{run['exception_id']}")).json()
        assert exception["subject"] == "W-00042" and exception["reason"] == "invalid_cost_center"
        assert exception["owner"] == "hr-master-data" and exception["status"] == "open"
        assert harness.state.get("W-00042") is None  # not recorded as synced: the next run retries it

        del harness.downstream.refuse["W-00042"]
        replay = await harness.api.post(f"{BASE}/exceptions/{exception['id']}/replay")
        assert replay.status_code == 202
        again = await harness.wait(replay.json()["id"])
        assert again["status"] == "succeeded" and again["result"]["changed"] == "1"
        assert "W-00042" in harness.downstream.employees
        resolved = (await harness.api.get(f"{BASE}/exceptions/{exception['id']}")).json()
        assert resolved["status"] == "resolved" and resolved["replay_count"] == 1
        twice = await harness.api.post(f"{BASE}/exceptions/{exception['id']}/replay")
        assert twice.status_code == 409

    async def test_unknown_legal_entity_goes_to_finance(self, harness: Harness) -> None:
        hired = harness.hr.hire_into("FR01")  # HR knows a company the ERP has no subsidiary for
        run = await harness.sync("unknown-le-0001")
        exceptions = (await harness.api.get(f"{BASE}/exceptions", params={"owner": "finance-master-data"})).json()
        assert run["status"] == "needs_attention"
        assert [(e["subject"], e["reason"]) for e in exceptions["items"]] == [(hired, "unknown_legal_entity")]
        assert ("psa", hired) not in harness.downstream.writes  # nothing half-written for it

    async def test_throttling_is_retried_and_nothing_is_written_twice(self, harness: Harness) -> None:
        harness.downstream.throttle = 3  # fewer than the step's attempts, however the calls interleave
        harness.hr.faults.add(Fault(kind="rate_limit", count=1, retry_after=0))
        run = await harness.sync("throttle-0001")
        assert run["status"] == "succeeded", run
        assert harness.downstream.throttle == 0 and harness.hr.faults.injected == 1
        assert len(harness.downstream.writes) == len(set(harness.downstream.writes)) == 480

    async def test_psa_outage_fails_the_run_and_the_next_run_finishes_the_rest(self, harness: Harness) -> None:
        harness.downstream.down = 10_000
        run = await harness.sync("outage-0001")
        assert run["status"] == "failed"
        exception = (await harness.api.get(f"{BASE}/exceptions/{run['exception_id']}")).json()
        assert exception["reason"] == "vendor_unavailable" and exception["owner"] == "integration-operations"
        assert step(run, "sync_workers")["state"] == "failed" and step(run, "finish")["state"] == "skipped"
        assert harness.downstream.employees == {}

        harness.downstream.down = 0
        replay = await harness.api.post(f"{BASE}/exceptions/{exception['id']}/replay")
        again = await harness.wait(replay.json()["id"])
        assert again["status"] == "succeeded" and again["result"]["synced"] == "240"
        assert (await harness.api.get(f"{BASE}/exceptions/{exception['id']}")).json()["status"] == "resolved"
