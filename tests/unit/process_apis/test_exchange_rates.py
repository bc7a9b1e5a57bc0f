"""Exchange rates: the configured table, the documented rounding, and the book's sources and cache.

The book is exercised with a real database (SQLite) and a stand-in for the ERP system API answering as an ERP
without rates (404 `rate_not_found`), one with rates, or one that is down.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.common import Money
from contracts.currency import ExchangeRate, convert
from contracts.problems import ProblemError
from foundation.db import create_engine, metadata
from process_apis.exchange_rates import DEFAULT_TABLE, RateBook, RateTable, RateTableError

ON = dt.date(2026, 10, 31)


def test_the_table_gives_the_latest_rate_on_or_before_the_day_either_way(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text("date,base,quote,rate\n2026-10-01,EUR,USD,1.08\n2026-10-15,EUR,USD,1.10\n")
    table = RateTable.load(path)
    assert table.rate("EUR", "USD", dt.date(2026, 10, 14)) == ExchangeRate(
        base="EUR", quote="USD", rate=Decimal("1.08"), date=dt.date(2026, 10, 1), source="rate_table")
    assert table.rate("EUR", "USD", ON).rate == Decimal("1.10")  # type: ignore[union-attr]
    inverse = table.rate("USD", "EUR", ON)
    assert inverse is not None and inverse.rate == Decimal("0.9090909091") and inverse.date == dt.date(2026, 10, 15)
    assert table.rate("EUR", "USD", dt.date(2026, 9, 30)) is None
    assert table.rate("EUR", "JPY", ON) is None


@pytest.mark.parametrize("body", ["date,base,quote,rate\n2026-10-01,EUR,USD,-1\n",
                                  "date,base,quote,rate\n2026-13-01,EUR,USD,1.1\n",
                                  "date,base,quote,rate\n2026-10-01,EURO,USD,1.1\n",
                                  "date,base,quote,rate\n2026-10-01,EUR,USD,NaN\n",
                                  "when,from,to\n2026-10-01,EUR,USD\n"])
def test_a_bad_table_names_its_file_and_line(tmp_path: Path, body: str) -> None:
    path = tmp_path / "rates.csv"
    path.write_text(body)
    with pytest.raises(RateTableError, match=r"rates\.csv:2"):
        RateTable.load(path)


def test_the_shipped_table_covers_every_demo_currency_pair_all_year() -> None:
    table = RateTable.load(DEFAULT_TABLE)
    codes = ("USD", "GBP", "EUR", "CAD", "AUD")
    for base in codes:
        for quote in codes:
            if base != quote:
                found = table.rate(base, quote, dt.date(2026, 1, 1))
                assert found is not None and found.rate > 0, (base, quote)


@given(st.lists(st.decimals(min_value=Decimal("-100000"), max_value=Decimal("100000"), places=2), min_size=1,
                max_size=40),
       st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("200"), places=6))
def test_a_converted_total_is_the_sum_of_its_converted_lines_to_the_cent(lines: list[Decimal], rate: Decimal) -> None:
    fx = ExchangeRate(base="EUR", quote="USD", rate=rate, date=ON)
    converted = [convert(Money(amount=a, currency="EUR"), fx) for a in lines]
    assert all(c.amount.amount == (a * rate).quantize(Decimal("0.01"), ROUND_HALF_UP) for c, a in zip(
        converted, lines, strict=True))
    assert all(c.rate == rate and c.rate_date == ON and c.original.currency == "EUR" for c in converted)
    total = sum((c.amount.amount for c in converted), Decimal(0))
    assert abs(total - sum(lines, Decimal(0)) * rate) <= Decimal("0.005") * len(lines)  # rounding per line only


def _book(answer: Callable[[httpx.Request], httpx.Response],
          table: RateTable | None = None) -> tuple[RateBook, list[str]]:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return answer(request)

    async def token() -> str:
        return "t"

    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://psconnect.internal")
    return RateBook.create(engine, http, token, table or RateTable([])), calls


async def test_the_erp_rate_is_used_and_kept_for_the_day() -> None:
    def erp(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"base": "CAD", "quote": "USD", "rate": "0.7384", "date": "2026-10-01",
                                         "source": "erp"})
    book, calls = _book(erp)
    first = await book.rate("CA01", "CAD", "USD", ON)
    assert (first.rate, first.date, first.source) == (Decimal("0.7384"), dt.date(2026, 10, 1), "erp")
    assert "legal_entity=CA01" in calls[0] and "on=2026-10-31" in calls[0]
    assert await book.rate("CA01", "CAD", "USD", ON) == first
    assert len(calls) == 1  # cached per entity, pair and day
    await book.rate("CA01", "CAD", "USD", ON + dt.timedelta(days=1))
    assert len(calls) == 2


async def test_an_erp_without_rates_falls_back_to_the_table_and_nothing_found_is_a_422() -> None:
    def no_rates(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"code": "rate_not_found", "title": "No rate"})
    table = RateTable([ExchangeRate(base="AUD", quote="USD", rate=Decimal("0.66"), date=dt.date(2026, 10, 1),
                                    source="rate_table")])
    book, _ = _book(no_rates, table)
    assert (await book.rate("AU01", "AUD", "USD", ON)).source == "rate_table"
    with pytest.raises(ProblemError) as missing:
        await book.rate("AU01", "AUD", "JPY", ON)
    assert missing.value.problem.status == 422 and missing.value.problem.code == "rate_unavailable"
    assert (await book.rate("AU01", "AUD", "AUD", ON)).source == "identity"


async def test_an_erp_that_is_down_is_a_503_and_caches_nothing() -> None:
    state = {"down": True}

    def flaky(request: httpx.Request) -> httpx.Response:
        if state["down"]:
            return httpx.Response(503)
        return httpx.Response(200, json={"base": "CAD", "quote": "USD", "rate": "0.74", "date": "2026-10-01",
                                         "source": "erp"})
    book, _ = _book(flaky)
    with pytest.raises(ProblemError) as down:
        await book.rate("CA01", "CAD", "USD", ON)
    assert (down.value.problem.status, down.value.problem.code) == (503, "rate_source_unavailable")
    state["down"] = False
    assert (await book.rate("CA01", "CAD", "USD", ON)).rate == Decimal("0.74")
