"""The NetSuite simulator's time ledger (timeBills), async jobs and the SuiteQL statement it answers.

TimeBills are stored as tuples, not dicts: the month-end benchmark posts 440,000 of them.
Posting a batch plays the account's map/reduce script (see ``system_apis.netsuite.client``):
one timeBill per line, ``externalId`` = line key, refusals per line with our script's codes.
SuiteQL: only the ``timebill`` statement ``netsuite._queries.posted_time_query`` builds is
understood (its WHERE conditions are parsed); anything else is 400 ``INVALID_PARAMETER``, as a malformed query is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final, NamedTuple, TypeVar

import msgspec

from system_apis.netsuite._billing_mapping import BatchLine
from system_apis.netsuite._queries import POSTED_TIME_CONDITION as _CONDITION
from system_apis.netsuite._queries import POSTED_TIME_ORDER as _ORDER
from system_apis.netsuite._queries import POSTED_TIME_SELECT as _SELECT
from system_apis.netsuite._queries import POSTED_TOTALS_GROUP as _TOTALS_GROUP
from system_apis.netsuite._queries import POSTED_TOTALS_SELECT as _TOTALS_SELECT
from system_apis.netsuite.mapping import JOB_STATUSES
from system_apis.netsuite.simulator._store import NsError, RecordStore

__all__ = ["AsyncJobs", "SimJob", "TimeLedger"]

Record = dict[str, Any]
T = TypeVar("T")

FIRST_TIME_BILL_ID: Final = 1_000_001
_CLOSED_JOB: Final = JOB_STATUSES["closed"][0]
_NUMBER: Final = re.compile(r"^-?\d{1,6}(\.\d{1,6})?$")
_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CENT: Final = Decimal("0.01")


class TimeBill(NamedTuple):
    key: str
    job: str
    employee: str
    subsidiary: str
    date: str
    hours: str
    rate: str
    currency: str
    billable: bool
    memo: str | None


class TimeLedger:
    """TimeBills by position (internal id = ``FIRST_TIME_BILL_ID`` + index), indexed by key and job."""

    def __init__(self, store: RecordStore) -> None:
        self.store = store
        self.bills: list[TimeBill] = []
        self.by_key: dict[str, int] = {}
        self.by_job: dict[str, list[int]] = {}
        self._intern: dict[str, str] = {}
        self._eids: dict[str, str] = {}
        self._lines = msgspec.json.Decoder(list[BatchLine])
        self._memo: tuple[str, int, list[Any]] = ("", -1, [])
        """(statement, bills when answered, its answer): `_memoized`."""

    def count(self, external_id: str | None) -> int:
        return len(self.bills) if external_id is None else int(external_id in self.by_key)

    def _s(self, value: str) -> str:
        return self._intern.setdefault(value, value)

    def post_batch(self, batch: Record) -> None:
        """Run the map/reduce on one batch record: post, refuse per line, write status and results."""
        posted: dict[str, str] = {}
        failed: dict[str, str] = {}
        try:
            lines = self._lines.decode(str(batch.get("custrecord_psc_tb_lines") or "[]"))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            batch.update(custrecord_psc_tb_status="FAILED",
                         custrecord_psc_tb_results=msgspec.json.encode({"error": str(exc)}).decode())
            return
        subsidiary = str(batch["custrecord_psc_tb_subsidiary"]["id"])
        jobs, employees = self.store.records["job"], self.store.records["employee"]
        job_ids, employee_ids = self.store.by_eid["job"], self.store.by_eid["employee"]
        checked: dict[tuple[str, str, str, str], str | None] = {}  # lines of a batch share job, worker and day
        for key, job_eid, employee_eid, date, hours, rate, currency, billable, memo in lines:
            known = self.by_key.get(key)
            if known is not None:  # DUP_RCRD on the unique externalId: already posted, report its id
                posted[key] = str(FIRST_TIME_BILL_ID + known)
                continue
            context = (job_eid, employee_eid, date, currency)
            if context in checked:
                refusal = checked[context]
            else:
                refusal = checked[context] = self._refusal(
                    subsidiary, jobs.get(job_ids.get(job_eid, "")), employees.get(employee_ids.get(employee_eid, "")),
                    date, currency)
            if refusal is None and (not _NUMBER.match(hours) or not _NUMBER.match(rate)):
                refusal = "INVALID_FLD_VALUE: Invalid hours or rate."
            if refusal:
                failed[key] = refusal
                continue
            job_id, index = job_ids[job_eid], len(self.bills)
            self.bills.append(TimeBill(key, job_id, employee_ids[employee_eid], subsidiary, self._s(date),
                                       self._s(hours), self._s(rate), self._s(currency), billable, memo))
            self.by_key[key] = index
            self.by_job.setdefault(job_id, []).append(index)
            posted[key] = str(FIRST_TIME_BILL_ID + index)
        batch.pop("custrecord_psc_tb_lines", None)  # the script clears the carrier once posted
        batch.update(custrecord_psc_tb_status="COMPLETE",
                     custrecord_psc_tb_results=msgspec.json.encode({"posted": posted, "failed": failed}).decode())

    def _refusal(self, subsidiary: str, job: Record | None, employee: Record | None, date: str,
                 currency: str) -> str | None:
        if job is None:
            return "INVALID_KEY_OR_REF: Invalid customer (project) reference key."
        if employee is None:
            return "INVALID_KEY_OR_REF: Invalid employee reference key."
        if not _DATE.match(date):
            return "INVALID_FLD_VALUE: Invalid date."
        if str(job["subsidiary"]["id"]) != subsidiary:
            return "INVALID_FLD_VALUE: The project belongs to another subsidiary than the batch."
        if (job.get("currency") or {}).get("refName") != currency:
            return f"INVALID_FLD_VALUE: The rate currency {currency} is not the project's currency."
        if str((job.get("entityStatus") or {}).get("id")) == _CLOSED_JOB:
            return "JOB_CLOSED: The project is closed; time cannot be entered against it."
        if employee.get("isInactive") and date > str(employee.get("releaseDate") or ""):
            return "EMPLOYEE_INACTIVE: The employee is inactive on this date."
        period = self.store.periods.get((subsidiary, date[:7]))
        if period is None or period.get("isClosed"):
            return f"PERIOD_CLOSED: The accounting period for {date} is closed."
        return None

    def render(self, key: str, root: str) -> Record:
        """``GET /timeBill/{id}`` or ``eid:{key}``."""
        index = self.by_key.get(key[4:]) if key.startswith("eid:") else _index(key, len(self.bills))
        if index is None:
            raise NsError(404, "NONEXISTENT_ID", f"The record instance does not exist ({key}).")
        bill = self.bills[index]
        ident = str(FIRST_TIME_BILL_ID + index)
        return {"links": [{"rel": "self", "href": f"{root}/timeBill/{ident}"}], "id": ident, "externalId": bill.key,
                "employee": {"id": bill.employee}, "customer": {"id": bill.job},
                "subsidiary": {"id": bill.subsidiary}, "tranDate": bill.date, "hours": Decimal(bill.hours),
                "rate": Decimal(bill.rate), "isBillable": bill.billable, "memo": bill.memo or ""}

    def query(self, statement: str, limit: int, offset: int) -> tuple[list[Record], int]:
        """Rows ``[offset, offset + limit)`` of the posted-time statement or of its sum per job, and the total."""
        if statement.startswith(_TOTALS_SELECT) and statement.endswith(_TOTALS_GROUP):
            rows = self._memoized(statement, lambda: self._totals(
                self._matching(statement[len(_TOTALS_SELECT):-len(_TOTALS_GROUP)])))
            return rows[offset:offset + limit], len(rows)
        if not statement.startswith(_SELECT) or not statement.endswith(_ORDER):
            raise NsError(400, "INVALID_PARAMETER", "Invalid search query: this simulator answers only the "
                          "posted-time statements.", "q")
        matching = self._memoized(statement, lambda: self._matching(statement[len(_SELECT):-len(_ORDER)]))
        return [self._row(i) for i in matching[offset:offset + limit]], len(matching)

    def _memoized(self, statement: str, answer: Callable[[], list[T]]) -> list[T]:
        """The last statement's answer while no bill was added, so paging through a large result does not rescan
        every page."""
        if self._memo[0] != statement or self._memo[1] != len(self.bills):
            self._memo = (statement, len(self.bills), answer())
        return self._memo[2]

    def _matching(self, where: str) -> list[int]:
        """The bills the conditions of ``netsuite._queries._period_conditions`` select, in id order."""
        project, first, last = None, "", "9999"
        for part in where.split(" AND "):
            match = _CONDITION.match(part.strip())
            if not match:
                raise NsError(400, "INVALID_PARAMETER", f"Invalid search query near {part!r}.", "q")
            if match.group(1):
                project = match.group(1)
            elif match.group(2) == ">=":
                first = match.group(3)
            elif match.group(2) == "<=":
                last = match.group(3)
        if project is not None:
            candidates: list[int] | range = self.by_job.get(self.store.by_eid["job"].get(project, ""), [])
        else:
            candidates = range(len(self.bills))
        bills = self.bills
        return [i for i in candidates if first <= bills[i].date <= last]

    def _totals(self, matching: list[int]) -> list[Record]:
        """The billable bills among `matching` summed per job as SuiteQL's GROUP BY answers: ordered by the job's
        external id, numbers as text."""
        sums: dict[str, tuple[Decimal, Decimal, int, str]] = {}
        for i in matching:
            bill = self.bills[i]
            if bill.billable:
                hours = Decimal(bill.hours)
                amount = (hours * Decimal(bill.rate)).quantize(_CENT, rounding=ROUND_HALF_UP)
                had = sums.get(bill.job)
                sums[bill.job] = ((had[0] + hours, had[1] + amount, had[2] + 1, bill.currency) if had
                                  else (hours, amount, 1, bill.currency))
        rows = [{"links": [], "job": self._eid("job", job), "currency": currency, "hours": str(hours),
                 "amount": str(amount), "lines": str(lines)} for job, (hours, amount, lines, currency) in sums.items()]
        return sorted(rows, key=lambda row: str(row["job"]))

    def _eid(self, record_type: str, internal: str) -> str:
        # External ids of jobs and employees never change once a timeBill points at them: cache them.
        cached = self._eids.get(internal)
        if cached is None:
            cached = self._eids[internal] = str(self.store.records[record_type][internal]["externalId"])
        return cached

    def _row(self, index: int) -> Record:
        bill = self.bills[index]
        return {"links": [], "id": str(FIRST_TIME_BILL_ID + index), "externalid": bill.key,
                "job": self._eid("job", bill.job), "employee": self._eid("employee", bill.employee),
                "trandate": bill.date, "hours": bill.hours, "rate": bill.rate,
                "isbillable": "T" if bill.billable else "F", "currency": bill.currency}


def _index(key: str, size: int) -> int | None:
    if not key.isdigit():
        return None
    index = int(key) - FIRST_TIME_BILL_ID
    return index if 0 <= index < size else None


class SimJob(msgspec.Struct, kw_only=True):
    id: str
    key: str
    record_type: str
    completed: bool = False
    progress: str = "pending"
    status: int = 0
    location: str | None = None
    error: NsError | None = None
    started: str = ""
    ended: str = ""


class AsyncJobs:
    """Jobs by id and by idempotency key; a key is remembered for the simulator's lifetime."""

    def __init__(self) -> None:
        self.jobs: dict[str, SimJob] = {}
        self.by_key: dict[str, str] = {}

    def find(self, job_id: str) -> SimJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise NsError(404, "NONEXISTENT_ID", f"The async job {job_id} does not exist.")
        return job

    def open(self, key: str, record_type: str, now: str) -> SimJob:
        job = SimJob(id=str(len(self.jobs) + 1), key=key, record_type=record_type, started=now)
        self.jobs[job.id] = job
        self.by_key[key] = job.id
        return job
