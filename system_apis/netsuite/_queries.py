"""The SuiteQL statements the NetSuite adapter sends (the simulator parses the same text back).

- ``posted_time_query``: posted time (timeBills) of a project between two dates, ordered by id so
  the adapter can page with OFFSET.
- ``applications_query``: what customer payments and credit memos have applied to some invoices,
  summed per invoice and applying type, from NetSuite's transaction link table
  (``NextTransactionLineLink``: ``previousdoc`` the invoice, ``nextdoc``/``nexttype`` the payment
  or credit, ``linktype = 'Payment'`` for an application, ``foreignamount`` in the invoice's currency).
- ``exchange_rate_query``: the ``currencyrate`` rows of a currency pair, in both directions, effective
  on or before a day, latest first.

Every value a statement embeds is checked against a quote-free alphabet first (digits, ISO codes,
dates), so no text from a request can change a statement.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Final

__all__ = [
    "APPLICATIONS_END",
    "APPLICATIONS_SELECT",
    "CREDIT_TYPE",
    "PAYMENT_TYPE",
    "POSTED_TIME_CONDITION",
    "POSTED_TIME_ORDER",
    "POSTED_TIME_SELECT",
    "RATE_CONDITION",
    "RATE_ORDER",
    "RATE_SELECT",
    "applications_query",
    "exchange_rate_query",
    "posted_time_query",
]

POSTED_TIME_SELECT: Final = ("SELECT t.id, t.externalid, j.externalid AS job, e.externalid AS employee, "
                             "TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate, t.hours, t.rate, t.isbillable, "
                             "c.symbol AS currency FROM timebill t JOIN job j ON j.id = t.customer "
                             "JOIN employee e ON e.id = t.employee JOIN currency c ON c.id = j.currency WHERE ")
POSTED_TIME_ORDER: Final = " ORDER BY t.id"
POSTED_TIME_CONDITION: Final = re.compile(r"^(?:j\.externalid = '([A-Za-z0-9_.:-]+)'|"
                                          r"t\.trandate (>=|<=) TO_DATE\('(\d{4}-\d{2}-\d{2})', 'YYYY-MM-DD'\)|"
                                          r"1 = 1)$")
"""One WHERE condition ``posted_time_query`` writes."""

PAYMENT_TYPE: Final = "CustPymt"
CREDIT_TYPE: Final = "CustCred"
"""SuiteQL transaction type codes of a customer payment and a credit memo."""
APPLICATIONS_SELECT: Final = ("SELECT l.previousdoc AS invoice, l.nexttype AS type, SUM(l.foreignamount) AS amount "
                              "FROM nexttransactionlinelink l WHERE l.linktype = 'Payment' "
                              f"AND l.nexttype IN ('{PAYMENT_TYPE}', '{CREDIT_TYPE}') AND l.previousdoc IN (")
APPLICATIONS_END: Final = ") GROUP BY l.previousdoc, l.nexttype"

RATE_SELECT: Final = ("SELECT r.id, b.symbol AS basecurrency, t.symbol AS transactioncurrency, r.exchangerate, "
                      "TO_CHAR(r.effectivedate, 'YYYY-MM-DD') AS effectivedate FROM currencyrate r "
                      "JOIN currency b ON b.id = r.basecurrency JOIN currency t ON t.id = r.transactioncurrency "
                      "WHERE ")
RATE_ORDER: Final = " ORDER BY r.effectivedate DESC, r.id DESC"
RATE_CONDITION: Final = re.compile(r"^\(\(b\.symbol = '([A-Z]{3})' AND t\.symbol = '([A-Z]{3})'\) OR "
                                   r"\(b\.symbol = '([A-Z]{3})' AND t\.symbol = '([A-Z]{3})'\)\) AND "
                                   r"r\.effectivedate <= TO_DATE\('(\d{4}-\d{2}-\d{2})', 'YYYY-MM-DD'\)$")
"""The WHERE clause ``exchange_rate_query`` writes."""
_CODE: Final = re.compile(r"^[A-Z]{3}$")


def posted_time_query(project_external_id: str | None, date_from: dt.date | None, date_to: dt.date | None) -> str:
    """The SuiteQL statement listing posted time; project ids are restricted to a quote-free alphabet."""
    conditions = []
    if project_external_id is not None:
        conditions.append(f"j.externalid = '{project_external_id}'")
    if date_from is not None:
        conditions.append(f"t.trandate >= TO_DATE('{date_from.isoformat()}', 'YYYY-MM-DD')")
    if date_to is not None:
        conditions.append(f"t.trandate <= TO_DATE('{date_to.isoformat()}', 'YYYY-MM-DD')")
    return POSTED_TIME_SELECT + (" AND ".join(conditions) or "1 = 1") + POSTED_TIME_ORDER


def applications_query(invoice_ids: Sequence[str]) -> str:
    """Payments and credits applied to these invoices (internal ids), one row per invoice and applying type."""
    if not invoice_ids or not all(i.isdigit() for i in invoice_ids):
        raise ValueError("invoice ids are NetSuite internal ids (digits)")
    return APPLICATIONS_SELECT + ", ".join(invoice_ids) + APPLICATIONS_END


def exchange_rate_query(first: str, second: str, on: dt.date) -> str:
    """Rates between two currencies (ISO codes), either stored direction, effective on or before ``on``."""
    if not (_CODE.match(first) and _CODE.match(second)):
        raise ValueError("currencies are ISO 4217 codes")
    return (RATE_SELECT + f"((b.symbol = '{first}' AND t.symbol = '{second}') OR "
            f"(b.symbol = '{second}' AND t.symbol = '{first}')) AND "
            f"r.effectivedate <= TO_DATE('{on.isoformat()}', 'YYYY-MM-DD')" + RATE_ORDER)
