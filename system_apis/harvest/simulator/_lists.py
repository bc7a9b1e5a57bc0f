"""How the Harvest simulator answers reads: paging envelopes, cursors, filters, the uninvoiced report.

Time entries and expenses are paged the same way (newest spent date first, by id), each
from its own compact store; the expense store is built the first time expenses are read.

Paging follows https://help.getharvest.com/api-v2/introduction/overview/pagination/: the
first page is numbered and its `links.next` already switches to a cursor
(`{"after": {"id": …}}`, base64); pages reached by cursor have `page`, `next_page` and
`previous_page` null, except the last, which is numbered again. `per_page` defaults to
and caps at 2000; more is a 422. `total_entries` of a filtered time-entry list is
counted once per filter and data version, not on every page (so is that of expenses).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import itertools
import math
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, Final, Protocol, TypeVar

import msgspec

from system_apis.harvest.simulator._expenses import ExpenseStore
from system_apis.harvest.simulator._store import PROJECT_ID_BASE, USER_ID_BASE, EntryFilter, Store

__all__ = ["MAX_PER_PAGE", "Invalid", "Lists"]

MAX_PER_PAGE: Final = 2000


class _Record(Protocol):
    @property
    def id(self) -> int: ...


R = TypeVar("R", bound=_Record)


class Invalid(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message




def _int(query: dict[str, str], name: str) -> int | None:
    if name not in query:
        return None
    try:
        return int(query[name])
    except ValueError as exc:
        raise Invalid(422, f"{name} must be an integer") from exc


def _bool(query: dict[str, str], name: str) -> bool | None:
    if name not in query:
        return None
    if query[name] not in ("true", "false"):
        raise Invalid(422, f"{name} must be true or false")
    return query[name] == "true"


def _date(query: dict[str, str], name: str) -> dt.date | None:
    value = query.get(name)
    if not value:
        return None
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise Invalid(422, f"{name} must be a date (YYYY-MM-DD)")


def _instant(query: dict[str, str], name: str) -> dt.datetime | None:
    value = query.get(name)
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise Invalid(422, f"{name} must be an ISO 8601 date and time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _encode_cursor(after_id: int) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode({"after": {"id": after_id}})).decode().rstrip("=")


def _decode_cursor(value: str) -> int:
    try:
        body = msgspec.json.decode(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        return int(body["after"]["id"])
    except (binascii.Error, ValueError, TypeError, KeyError, msgspec.DecodeError) as exc:
        raise Invalid(422, "cursor is invalid") from exc


class _Paging(msgspec.Struct, kw_only=True):
    base: str
    path: str
    query: dict[str, str]
    per_page: int

    def link(self, **extra: str | int) -> str:
        kept = {k: v for k, v in self.query.items() if k not in ("page", "cursor", "per_page", "ref")}
        params = {**kept, **{k: str(v) for k, v in extra.items()}, "per_page": str(self.per_page)}
        order = sorted(params) if "cursor" not in extra else ["cursor", *sorted(k for k in params if k != "cursor")]
        return f"{self.base}{self.path}?" + "&".join(f"{k}={params[k]}" for k in order)




class Lists:
    """Harvest's list and record answers over one `Store` (paging, filters, the uninvoiced report)."""

    def __init__(self, store: Store, expenses: Callable[[], ExpenseStore]) -> None:
        self.store = store
        self._expenses = expenses
        self._counts: dict[tuple[str, EntryFilter, int], int] = {}

    @staticmethod
    def _per_page(query: dict[str, str]) -> int:
        per_page = _int(query, "per_page")
        if per_page is None:
            return MAX_PER_PAGE
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise Invalid(422, f"per_page must be between 1 and {MAX_PER_PAGE}")
        return per_page

    @staticmethod
    def _envelope(key: str, rows: list[Any], paging: _Paging, *, total: int, page: int | None, more: bool,
                  last_id: int | None) -> dict[str, Any]:
        total_pages = max(1, math.ceil(total / paging.per_page))
        return {key: rows, "per_page": paging.per_page, "total_pages": total_pages, "total_entries": total,
                "next_page": page + 1 if page is not None and more else None,
                "previous_page": page - 1 if page is not None and page > 1 else None, "page": page,
                "links": {"first": paging.link(page=1, ref="first"),
                          "next": paging.link(cursor=_encode_cursor(last_id), ref="next_cursor")
                          if more and last_id is not None else None,
                          "previous": None, "last": paging.link(page=total_pages, ref="last")}}

    def _list(self, key: str, records: list[dict[str, Any]], paging: _Paging) -> dict[str, Any]:
        query = paging.query
        if "cursor" in query:
            after = _decode_cursor(query["cursor"])
            start = next((i + 1 for i, r in enumerate(records) if r["id"] == after), None)
            if start is None:
                raise Invalid(422, "cursor is invalid")
            page_no = None
        else:
            page_no = max(_int(query, "page") or 1, 1)
            start = (page_no - 1) * paging.per_page
        rows = records[start:start + paging.per_page]
        more = start + paging.per_page < len(records)
        if page_no is None and not more:
            page_no = max(1, math.ceil(len(records) / paging.per_page))
        return self._envelope(key, rows, paging, total=len(records), page=page_no, more=more,
                              last_id=rows[-1]["id"] if rows else None)

    def _entry_filter(self, query: dict[str, str]) -> EntryFilter:
        store = self.store
        user, project, task = _int(query, "user_id"), _int(query, "project_id"), _int(query, "task_id")
        return EntryFilter(
            start=_date(query, "from"), end=_date(query, "to"), client=_int(query, "client_id"),
            user=None if user is None else user - USER_ID_BASE,
            project=None if project is None else project - PROJECT_ID_BASE,
            task=None if task is None else next((i for i, t in enumerate(store.task_refs) if t.id == task), -1),
            is_billed=_bool(query, "is_billed"), is_running=_bool(query, "is_running"),
            updated_since=_instant(query, "updated_since"), reference=query.get("external_reference_id"))

    def _scanned(self, key: str, paging: _Paging, scan: Callable[[EntryFilter, int], Iterator[R]],
                 position: Callable[[int], int | None], render: Callable[[R], Any]) -> dict[str, Any]:
        """A page of a stored, filtered list: numbered first page, cursor (`after` id) pages from there on."""
        query = paging.query
        f = self._entry_filter(query)
        if "cursor" in query:
            after = position(_decode_cursor(query["cursor"]))
            if after is None:
                raise Invalid(422, "cursor is invalid")
            found = scan(f, after + 1)
            page_no: int | None = None
        else:
            page_no = max(_int(query, "page") or 1, 1)
            found = scan(f, 0)
            for _ in itertools.islice(found, (page_no - 1) * paging.per_page):
                pass
        picked = list(itertools.islice(found, paging.per_page))
        more = next(found, None) is not None
        counted = (key, f, self.store.version)
        total = self._counts.get(counted)
        if total is None:
            total = self._counts[counted] = sum(1 for _ in scan(f, 0))
        if page_no is None and not more:
            page_no = max(1, math.ceil(total / paging.per_page))
        return self._envelope(key, [render(e) for e in picked], paging, total=total, page=page_no,
                              more=more, last_id=picked[-1].id if picked else None)

    def _time_entries(self, paging: _Paging) -> dict[str, Any]:
        store = self.store
        return self._scanned("time_entries", paging, store.scan, store.position, store.render)

    def _expenses_list(self, paging: _Paging) -> dict[str, Any]:
        expenses = self._expenses()
        return self._scanned("expenses", paging, expenses.scan, expenses.position, expenses.render)

    def _uninvoiced(self, paging: _Paging) -> dict[str, Any]:
        start, end = _date(paging.query, "from"), _date(paging.query, "to")
        if start is None or end is None:
            raise Invalid(422, "from and to are required")
        if end < start or (end - start).days > 365:
            raise Invalid(422, "The timeframe cannot exceed 1 year (365 days)")
        store = self.store
        totals: dict[int, list[Decimal]] = {}
        for e in store.scan(EntryFilter(start=start, end=end)):
            row = totals.setdefault(e.project, [Decimal(0), Decimal(0), Decimal(0)])
            row[0] += e.hours
            if e.billable and not e.is_billed:
                rate = e.rate if e.rate is not None else store.user_assignment(e.project, e.user).hourly_rate
                row[1] += e.hours
                row[2] += e.hours * rate
        results = []
        for p_index in sorted(totals, key=lambda i: (store.client_refs[store.seeds[i].account_id].name,
                                                      store.seeds[i].name)):
            seed, (hours, open_hours, amount) = store.seeds[p_index], totals[p_index]
            client = store.client_refs[seed.account_id]
            results.append({"client_id": client.id, "client_name": client.name, "project_id": PROJECT_ID_BASE + p_index,
                            "project_name": seed.name, "currency": seed.currency, "total_hours": hours,
                            "uninvoiced_hours": open_hours, "uninvoiced_expenses": Decimal(0),
                            "uninvoiced_amount": amount.quantize(Decimal("0.01")), "id": p_index})
        body = self._list("results", results, paging)
        for row in body["results"]:
            del row["id"]
        return body

    # --- request handling -------------------------------------------------------------------------------

    def handle(self, path: str, query: dict[str, str], base: str) -> Any:
        store = self.store
        parts = path.removeprefix("/v2/").split("/")
        paging = _Paging(base=base, path=path, query=query, per_page=self._per_page(query))
        if parts == ["users", "me"]:
            return {"id": 3_099_999, "first_name": "psconnect", "last_name": "Integration",
                    "email": "integration@meridian.example", "is_active": True, "is_contractor": False,
                    "access_roles": ["administrator"], "roles": [], "created_at": store.created,
                    "updated_at": store.created}
        if len(parts) == 2 and parts[0] in ("users", "projects", "time_entries", "expenses"):
            try:
                index = int(parts[1])
            except ValueError as exc:
                raise Invalid(404, "Not found") from exc
            if parts[0] == "expenses":
                expenses = self._expenses()
                position = expenses.position(index)
                if position is None:
                    raise Invalid(404, "Not found")
                return expenses.render(expenses.rows[position])
            if parts[0] == "time_entries":
                position = store.position(index)
                if position is None:
                    raise Invalid(404, "Not found")
                return store.render(store.entries[position])
            base_id, size = ((USER_ID_BASE, len(store.workers)) if parts[0] == "users"
                             else (PROJECT_ID_BASE, len(store.seeds)))
            if not 0 <= index - base_id < size:
                raise Invalid(404, "Not found")
            return store.user_record(index - base_id) if parts[0] == "users" else store.project_record(index - base_id)
        if len(parts) != 1 and parts != ["reports", "uninvoiced"]:
            raise Invalid(404, "Not found")
        collection = parts[0] if len(parts) == 1 else "reports/uninvoiced"
        if collection == "time_entries":
            return self._time_entries(paging)
        if collection == "reports/uninvoiced":
            return self._uninvoiced(paging)
        if collection == "expenses":
            return self._expenses_list(paging)
        active = _bool(query, "is_active")
        if collection == "expense_categories":  # newest first, as Harvest sorts them
            expenses = self._expenses()
            categories = [expenses.category_record(i) for i in reversed(range(len(expenses.category_refs)))]
            return self._list("expense_categories", [c for c in categories if active is None
                                                     or c["is_active"] == active], paging)
        if collection == "users":
            users = [store.user_record(i) for i in range(len(store.workers))]
            return self._list("users", [u for u in users if active is None or u["is_active"] == active], paging)
        if collection == "projects":
            projects = [store.project_record(i) for i in range(len(store.seeds))]
            client = _int(query, "client_id")
            return self._list("projects", [p for p in projects if (active is None or p["is_active"] == active)
                                           and (client is None or p["client"]["id"] == client)], paging)
        if collection == "clients":
            return self._list("clients", [store.client_record(a) for a in store.client_ids], paging)
        if collection == "user_assignments":
            return self._list("user_assignments",
                              [store.user_assignment_record(k) for k in store.user_assignments], paging)
        if collection == "task_assignments":
            return self._list("task_assignments",
                              [store.task_assignment_record(k) for k in store.task_assignments], paging)
        raise Invalid(404, "Not found")
