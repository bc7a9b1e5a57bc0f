"""Exchange rates for reporting in a group currency: each entity's ERP first, else the configured rate table.

A rate is asked for a legal entity (its ERP keeps its own rates), a currency pair and a day, and is
cached per (entity, pair, day) in the database once read, so a dashboard costs the ERPs one call per
pair and day however often it is refreshed. The source order:

1. the same currency: rate 1 (`identity`);
2. the entity's ERP through the ERP system API (`erp`: the ERP's own dated rates); an ERP that keeps
   none answers 404 `rate_not_found`;
3. the configured daily rate table (`rate_table`): `date,base,quote,rate` rows in a CSV file
   (``PSCONNECT_RATE_TABLE``; the shipped `exchange_rates.csv` holds the demo firm's rates), the
   latest row on or before the day, either direction (an inverse is 1/rate to 10 places).

Nothing found is a 422 problem `rate_unavailable` naming the pair and day (an ERP that cannot answer
now, a 503 `rate_source_unavailable`): a figure is never added to others in a currency it is not in.
Every converted figure carries its rate, the rate's date and its source (`contracts/currency.py`,
which also fixes the rounding).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

import httpx
import sqlalchemy as sa

from contracts.common import Money
from contracts.currency import ConvertedMoney, ExchangeRate, convert
from contracts.problems import ProblemError
from foundation.clock import utcnow
from foundation.db import metadata
from process_apis._internal.system_clients import BusinessFailure, ErpApi, TransientFailure
from process_apis.registry import TokenSource

__all__ = ["DEFAULT_TABLE", "RateBook", "RateTable", "RateTableError", "fx_rates"]

DEFAULT_TABLE: Final = Path(__file__).with_name("exchange_rates.csv")
INVERSE_PLACES: Final = Decimal("1e-10")

fx_rates = sa.Table(
    "fx_rates", metadata,
    sa.Column("legal_entity_code", sa.String(20), primary_key=True),
    sa.Column("base", sa.String(3), primary_key=True),
    sa.Column("quote", sa.String(3), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("rate", sa.String(40), nullable=False),
    sa.Column("rate_date", sa.Date, nullable=False),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
)


class RateTableError(ValueError):
    """The configured rate table cannot be read: start-up stops naming the file and line."""


class RateTable:
    """The configured daily rates, for entities whose ERP keeps none."""

    def __init__(self, rows: Sequence[ExchangeRate]) -> None:
        self._by_pair: dict[tuple[str, str], list[ExchangeRate]] = {}
        for row in sorted(rows, key=lambda r: r.date):
            self._by_pair.setdefault((row.base, row.quote), []).append(row)

    @classmethod
    def load(cls, path: Path) -> RateTable:
        rows: list[ExchangeRate] = []
        with path.open(newline="") as handle:
            for number, record in enumerate(csv.DictReader(handle), start=2):
                try:
                    rate = Decimal(record["rate"])
                    row = ExchangeRate(base=record["base"].strip(), quote=record["quote"].strip(), rate=rate,
                                       date=dt.date.fromisoformat(record["date"].strip()), source="rate_table")
                except (KeyError, ValueError, InvalidOperation, AttributeError) as exc:
                    raise RateTableError(f"{path}:{number}: expected date,base,quote,rate ({exc})") from None
                if not rate.is_finite() or rate <= 0 or len(row.base) != 3 or len(row.quote) != 3:
                    raise RateTableError(f"{path}:{number}: a rate is a positive decimal between two ISO codes")
                rows.append(row)
        return cls(rows)

    def rate(self, base: str, quote: str, on: dt.date) -> ExchangeRate | None:
        direct = self._latest(base, quote, on)
        if direct is not None:
            return direct
        inverse = self._latest(quote, base, on)
        if inverse is None:
            return None
        return ExchangeRate(base=base, quote=quote, rate=(1 / inverse.rate).quantize(INVERSE_PLACES),
                            date=inverse.date, source="rate_table")

    def _latest(self, base: str, quote: str, on: dt.date) -> ExchangeRate | None:
        found = [r for r in self._by_pair.get((base, quote), []) if r.date <= on]
        return found[-1] if found else None


class RateBook:
    def __init__(self, engine: sa.Engine, erp: ErpApi, table: RateTable) -> None:
        self.engine = engine
        self.erp = erp
        self.table = table

    @classmethod
    def create(cls, engine: sa.Engine, http: httpx.AsyncClient, token: TokenSource, table: RateTable) -> RateBook:
        """The book the gateway builds: the ERP system API through its internal client, as the service."""
        return cls(engine, ErpApi(http, token), table)

    async def rate(self, legal_entity: str, base: str, quote: str, on: dt.date) -> ExchangeRate:
        if base == quote:
            return ExchangeRate(base=base, quote=quote, rate=Decimal(1), date=on, source="identity")
        cached = self._cached(legal_entity, base, quote, on)
        if cached is not None:
            return cached
        found: ExchangeRate | None
        try:
            found = await self.erp.exchange_rate(base, quote, on, legal_entity)
        except BusinessFailure as exc:
            if exc.status != 404:
                raise _unavailable(base, quote, on, f"{legal_entity}'s ERP refused: {exc}") from exc
            found = self.table.rate(base, quote, on)
        except TransientFailure as exc:
            raise ProblemError(503, "rate-source-unavailable", "Exchange rates unavailable",
                               f"{legal_entity}'s ERP cannot give its {base}→{quote} rate now: {exc}",
                               code="rate_source_unavailable", headers={"Retry-After": "30"}) from exc
        if found is None:
            raise _unavailable(base, quote, on, f"neither {legal_entity}'s ERP nor the rate table has it")
        self._keep(legal_entity, on, found)
        return found

    async def convert(self, legal_entity: str, money: Money, quote: str, on: dt.date) -> ConvertedMoney:
        return convert(money, await self.rate(legal_entity, money.currency, quote, on))

    def _cached(self, entity: str, base: str, quote: str, on: dt.date) -> ExchangeRate | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(fx_rates.c.rate, fx_rates.c.rate_date, fx_rates.c.source).where(
                fx_rates.c.legal_entity_code == entity, fx_rates.c.base == base, fx_rates.c.quote == quote,
                fx_rates.c.day == on)).first()
        if row is None:
            return None
        return ExchangeRate(base=base, quote=quote, rate=Decimal(row.rate), date=row.rate_date, source=row.source)

    def _keep(self, entity: str, on: dt.date, rate: ExchangeRate) -> None:
        values = {"legal_entity_code": entity, "base": rate.base, "quote": rate.quote, "day": on,
                  "rate": str(rate.rate), "rate_date": rate.date, "source": rate.source, "fetched_at": utcnow()}
        try:
            with self.engine.begin() as conn:
                conn.execute(fx_rates.insert().values(**values))
        except sa.exc.IntegrityError:
            pass  # another request kept the same day's rate first


def _unavailable(base: str, quote: str, on: dt.date, why: str) -> ProblemError:
    return ProblemError(422, "rate-unavailable", "No exchange rate",
                        f"No {base}→{quote} rate for {on.isoformat()}: {why}.", code="rate_unavailable")
