"""The NetSuite simulator's expense reports and expense categories (the record store calls in on every write).

What NetSuite does and this reproduces:

- ``expenseCategory`` records (name, ``expenseAcct``, ``rateRequired``, ``isInactive``), read-only to the
  integration role; seeded with the demo firm's categories (``demo_delivery.EXPENSE_CATEGORIES`` and the
  categories its defect expenses name).
- An ``expenseReport`` must name an active employee (``entity``; otherwise 400 ``INVALID_KEY_OR_REF`` on
  ``entity``) of its subsidiary, a posting period of that subsidiary (from ``postingPeriod`` or its
  ``tranDate``) that is neither closed nor locked for A/P (an expense report is an A/P transaction:
  400 ``PERIOD_CLOSED``), an ``expenseReportCurrency``, and at least one ``expense`` line. Each line needs
  an active category, a known job that is not closed as ``customer`` when billable (400
  ``INVALID_KEY_OR_REF`` on ``expense.items[n].customer``), and an amount: ``amount`` as given, else
  ``foreignAmount x exchangeRate`` rounded to the cent; a rate-required category needs ``quantity`` and
  ``rate``. Negative lines are accepted (a reversal). NetSuite sums ``total`` and ``amount``.
- SuiteQL: the statements ``netsuite._queries`` builds for expenses (categories, keys, posted expenses);
  rows carry every value as a string, as NetSuite's do.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final

from system_apis.netsuite._queries import (
    EXPENSE_CATEGORIES_QUERY,
    EXPENSE_EMPLOYEES_SELECT,
    EXPENSE_JOBS_SELECT,
    EXPENSE_KEYS_END,
    EXPENSE_KEYS_SELECT,
    POSTED_EXPENSES_CONDITION,
    POSTED_EXPENSES_ORDER,
    POSTED_EXPENSES_SELECT,
)
from system_apis.netsuite.mapping import CURRENCY_IDS, JOB_STATUSES
from system_apis.netsuite.simulator._errors import NsError

__all__ = ["EXPENSE_ACCOUNT", "ExpenseBook"]

Record = dict[str, Any]
EXPENSE_ACCOUNT: Final = "58"
"""The seeded categories' expense account (``Travel & Entertainment`` in a default chart of accounts)."""
_CLOSED_JOB: Final = JOB_STATUSES["closed"][0]
_CENT: Final = Decimal("0.01")
_KEYS: Final = re.compile(r"^'([A-Za-z0-9_.:-]{1,80})'$")


def _ref(record: Record, field: str) -> str:
    ref = record.get(field)
    return str(ref.get("id")) if isinstance(ref, dict) and ref.get("id") is not None else ""


def _number(value: Any, path: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise NsError(400, "INVALID_FLD_VALUE", f"Invalid number {value!r}.", path) from None
    if not number.is_finite():
        raise NsError(400, "INVALID_FLD_VALUE", f"Invalid number {value!r}.", path)
    return number


def _code(ref: Any) -> str:
    if not isinstance(ref, dict):
        return ""
    code = ref.get("refName") or {v: k for k, v in CURRENCY_IDS.items()}.get(str(ref.get("id")))
    return str(code or "")


class ExpenseBook:
    """Expense categories and the rules and queries of expense reports, over the store's record tables."""

    def __init__(self, records: dict[str, dict[str, Record]], periods: dict[tuple[str, str], Record],
                 by_eid: dict[str, dict[str, str]]) -> None:
        self.records = records
        self.periods = periods
        self.by_eid = by_eid
        self.version = 0
        """Bumped on every expense report write, so a paged read need not rescan every page."""
        self._memo: tuple[str, int, list[Record]] = ("", -1, [])
        self._joined: tuple[tuple[int, int, int, int], dict[str | None, list[Record]]] = ((-1, 0, 0, 0), {})
        """The posted-expense rows of every report, by job external id (None: all), built once per version:
        NetSuite answers a query by index, so a reconciliation reading one project after another must not
        rescan every report for each (that made the simulator quadratic in the firm's size)."""

    @staticmethod
    def category_records(names: Iterable[str], stamp: str) -> list[Record]:
        """One active ``expenseCategory`` per distinct name, for the store to insert."""
        return [{"externalId": f"EXPCAT-{name.upper()}", "name": name, "expenseAcct": {"id": EXPENSE_ACCOUNT},
                 "rateRequired": False, "isInactive": False, "createdDate": stamp, "lastModifiedDate": stamp}
                for name in dict.fromkeys(names)]

    # ------------------------------------------------------------------ writes

    def check_report(self, report: Record) -> None:
        """Refuse what NetSuite refuses; fill in what it derives (line amounts, totals, status)."""
        self.version += 1
        employee = self.records["employee"].get(_ref(report, "entity"))
        if employee is None or employee.get("isInactive"):
            raise NsError(400, "INVALID_KEY_OR_REF", f"Invalid entity reference key {_ref(report, 'entity')!r}: no "
                          "such active employee.", "entity")
        subsidiary = _ref(employee, "subsidiary")
        if report.get("subsidiary") and _ref(report, "subsidiary") != subsidiary:
            raise NsError(400, "INVALID_FLD_VALUE", "The subsidiary of an expense report is its employee's.",
                          "subsidiary")
        report["subsidiary"] = {"id": subsidiary}
        try:
            day = dt.date.fromisoformat(str(report.get("tranDate")))
        except ValueError:
            raise NsError(400, "INVALID_FLD_VALUE", f"Invalid date value {report.get('tranDate')!r}; expected "
                          "yyyy-MM-dd (the account's date format).", "tranDate") from None
        self._check_period(report, subsidiary, day)
        currency = _code(report.get("expenseReportCurrency"))
        if currency not in CURRENCY_IDS:
            raise NsError(400, "INVALID_KEY_OR_REF", "Invalid expenseReportCurrency reference key.",
                          "expenseReportCurrency")
        lines = (report.get("expense") or {}).get("items") or []
        if not lines:
            raise NsError(400, "USER_ERROR", "You must enter at least one line item for this transaction.", "expense")
        total = Decimal(0)
        for n, line in enumerate(lines):
            total += self._check_line(line, n, subsidiary, currency, day)
        report.update(total=total, amount=total, currency={"id": CURRENCY_IDS[currency], "refName": currency},
                      status="Approved by Accounting" if report.get("accountingApproval") else
                      "Pending Supervisor Approval" if report.get("complete") else "In Progress")

    def _check_period(self, report: Record, subsidiary: str, day: dt.date) -> None:
        if report.get("postingPeriod"):
            period = self.records["accountingPeriod"].get(_ref(report, "postingPeriod"))
            if period is None or _ref(period, "custrecord_psc_subsidiary") != subsidiary:
                raise NsError(400, "INVALID_KEY_OR_REF", "Invalid postingPeriod reference key for this subsidiary.",
                              "postingPeriod")
        else:
            found = self.periods.get((subsidiary, day.strftime("%Y-%m")))
            if found is None:
                raise NsError(400, "PERIOD_CLOSED", f"No open accounting period holds {day}.", "tranDate")
            period = found
            report["postingPeriod"] = {"id": str(period["id"])}
        if period.get("isClosed") or period.get("apLocked"):
            raise NsError(400, "PERIOD_CLOSED", f"The accounting period {period.get('periodName')} is closed or "
                          "locked for accounts payable; choose an open period.", "postingPeriod")

    def _check_line(self, line: Record, n: int, subsidiary: str, currency: str, day: dt.date) -> Decimal:
        path = f"expense.items[{n}]"
        category = self.records["expenseCategory"].get(_ref(line, "category"))
        if category is None or category.get("isInactive"):
            raise NsError(400, "INVALID_KEY_OR_REF", f"Invalid category reference key {_ref(line, 'category')!r}.",
                          f"{path}.category")
        if line.get("customer"):
            job = self.records["job"].get(_ref(line, "customer"))
            if job is None or _ref(job, "entityStatus") == _CLOSED_JOB:
                raise NsError(400, "INVALID_KEY_OR_REF", f"Invalid customer reference key {_ref(line, 'customer')!r}"
                              ": no such open project.", f"{path}.customer")
            if _ref(job, "subsidiary") != subsidiary:
                raise NsError(400, "INVALID_FLD_VALUE", "The project belongs to another subsidiary.",
                              f"{path}.customer")
        elif line.get("isBillable"):
            raise NsError(400, "USER_ERROR", "A billable expense needs a customer or project.", f"{path}.isBillable")
        if category.get("rateRequired"):
            if line.get("quantity") in (None, "") or line.get("rate") in (None, ""):
                raise NsError(400, "USER_ERROR", "Please enter value(s) for: Quantity, Rate.", f"{path}.quantity")
            line["amount"] = (_number(line["quantity"], f"{path}.quantity") *
                              _number(line["rate"], f"{path}.rate")).quantize(_CENT, rounding=ROUND_HALF_UP)
        spent = _code(line.get("currency")) or currency
        if line.get("amount") in (None, ""):
            if spent != currency and line.get("exchangeRate") in (None, ""):
                raise NsError(400, "USER_ERROR", "Please enter value(s) for: Exchange Rate.", f"{path}.exchangeRate")
            rate = _number(line.get("exchangeRate") or 1, f"{path}.exchangeRate")
            line["amount"] = (_number(line.get("foreignAmount"), f"{path}.foreignAmount") * rate).quantize(
                _CENT, rounding=ROUND_HALF_UP)
        amount = _number(line["amount"], f"{path}.amount")
        line.setdefault("expenseDate", day.isoformat())
        line.setdefault("foreignAmount", amount)
        line["currency"] = {"id": CURRENCY_IDS.get(spent, ""), "refName": spent}
        return amount

    # ------------------------------------------------------------------ SuiteQL

    def query(self, statement: str) -> list[Record] | None:
        """The rows of an expense statement, or None when the statement is not one of these."""
        if statement == EXPENSE_CATEGORIES_QUERY:
            return [{"links": [], "id": c["id"], "name": c["name"], "isinactive": "T" if c.get("isInactive") else "F"}
                    for c in sorted(self.records["expenseCategory"].values(), key=lambda c: int(c["id"]))]
        if statement.startswith(EXPENSE_KEYS_SELECT) and statement.endswith(EXPENSE_KEYS_END):
            return self._keys(statement[len(EXPENSE_KEYS_SELECT):-len(EXPENSE_KEYS_END)])
        for select, record_type in ((EXPENSE_JOBS_SELECT, "job"), (EXPENSE_EMPLOYEES_SELECT, "employee")):
            if statement.startswith(select) and statement.endswith(EXPENSE_KEYS_END):
                return self._entities(record_type, statement[len(select):-len(EXPENSE_KEYS_END)])
        if statement.startswith(POSTED_EXPENSES_SELECT) and statement.endswith(POSTED_EXPENSES_ORDER):
            return self._posted(statement)
        return None

    def _keys(self, listed: str) -> list[Record]:
        reports = self.records["expenseReport"]
        return [{"links": [], "id": reports[i]["id"], "externalid": reports[i]["externalId"]}
                for i in self._listed("expenseReport", listed)]

    def _entities(self, record_type: str, listed: str) -> list[Record]:
        """Job or employee rows: references as their ids, booleans as ``T``/``F``, every value a string."""
        table = self.records[record_type]
        rows = []
        for internal in self._listed(record_type, listed):
            record = table[internal]
            row = {"links": [], "id": record["id"], "externalid": record["externalId"],
                   "subsidiary": _ref(record, "subsidiary")}
            if record_type == "job":
                row.update(entitystatus=_ref(record, "entityStatus"), currency=_ref(record, "currency"))
            else:
                row["isinactive"] = "T" if record.get("isInactive") else "F"
            rows.append(row)
        return rows

    def _listed(self, record_type: str, listed: str) -> list[str]:
        """The internal ids, in id order, of the records whose external ids an ``IN ('a', 'b')`` list names."""
        keys = set()
        for part in listed.split(", "):
            match = _KEYS.match(part)
            if not match:
                raise NsError(400, "INVALID_PARAMETER", f"Invalid search query near {part!r}.", "q")
            keys.add(match.group(1))
        table = self.records[record_type]
        return sorted((i for key in keys if (i := self.by_eid[record_type].get(key)) in table), key=int)

    def _posted(self, statement: str) -> list[Record]:
        if self._memo[0] == statement and self._memo[1] == self.version:
            return self._memo[2]
        project, first, last = None, "", "9999"
        for part in statement[len(POSTED_EXPENSES_SELECT):-len(POSTED_EXPENSES_ORDER)].split(" AND "):
            match = POSTED_EXPENSES_CONDITION.match(part.strip())
            if not match:
                raise NsError(400, "INVALID_PARAMETER", f"Invalid search query near {part!r}.", "q")
            if match.group(1):
                project = match.group(1)
            elif match.group(2) == ">=":
                first = match.group(3)
            elif match.group(2) == "<=":
                last = match.group(3)
        rows = [row for row in self._rows_by_job().get(project, []) if first <= row["trandate"] <= last]
        self._memo = (statement, self.version, rows)
        return rows

    def _rows_by_job(self) -> dict[str | None, list[Record]]:
        """Every report line the posted-expenses join keeps, in report id order, by job external id and under
        None; rebuilt when a report is written or a job, employee or category is added."""
        state = (self.version, len(self.records["job"]), len(self.records["employee"]),
                 len(self.records["expenseCategory"]))
        if self._joined[0] == state:
            return self._joined[1]
        by_job: dict[str | None, list[Record]] = {None: []}
        for report in sorted(self.records["expenseReport"].values(), key=lambda r: int(r["id"])):
            if not report.get("custbody_psc_line_key"):
                continue
            employee = self.records["employee"].get(_ref(report, "entity")) or {}
            for line in (report.get("expense") or {}).get("items") or []:
                job = self.records["job"].get(_ref(line, "customer"))
                category = self.records["expenseCategory"].get(_ref(line, "category"))
                if job is None or category is None:
                    continue  # the inner joins drop a line without a job or category
                row = {"links": [], "id": report["id"], "linekey": report["custbody_psc_line_key"],
                       "job": job.get("externalId"), "employee": employee.get("externalId"),
                       "trandate": str(report["tranDate"]), "amount": str(line["amount"]),
                       "currency": _code(report.get("currency")), "category": category["name"],
                       "isbillable": "T" if line.get("isBillable") else "F"}
                by_job[None].append(row)
                by_job.setdefault(row["job"], []).append(row)
        self._joined = (state, by_job)
        return by_job
