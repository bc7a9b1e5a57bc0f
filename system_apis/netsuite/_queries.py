"""The SuiteQL statements the NetSuite adapter sends (the simulator parses the same text back).

- ``posted_time_query``: posted time (timeBills) of a project between two dates, ordered by id so
  the adapter can page with OFFSET.
- ``applications_query``: what customer payments and credit memos have applied to some invoices,
  summed per invoice and applying type, from NetSuite's transaction link table
  (``NextTransactionLineLink``: ``previousdoc`` the invoice, ``nextdoc``/``nexttype`` the payment
  or credit, ``linktype = 'Payment'`` for an application, ``foreignamount`` in the invoice's currency).
- ``exchange_rate_query``: the ``currencyrate`` rows of a currency pair, in both directions, effective
  on or before a day, latest first.
- ``posted_expenses_query``: psconnect's expense reports (``transaction`` of type ``ExpRept`` carrying
  ``custbody_psc_line_key``) with their expense line (``transactionline``, ``mainline = 'F'``: the line's
  ``entity`` is the job, ``category`` the expense category, ``foreignamount`` the amount in the report's
  currency) of a project between two dates, ordered by id for OFFSET paging.
- ``external_ids_query``: which of some external ids name an expense report (``EXPENSE_KEYS_SELECT``), a job
  (``EXPENSE_JOBS_SELECT``) or an employee (``EXPENSE_EMPLOYEES_SELECT``): one read for a whole batch instead
  of one GET per line.
- ``EXPENSE_CATEGORIES_QUERY``: every expense category with its name and inactive flag.
- ``intercompany_charges_query``: psconnect's intercompany charges (invoices and vendor bills carrying
  ``custbody_psc_ic_side``), one row per document with its subsidiary from the main line, by period and
  counterparty code, ordered by id for OFFSET paging; ``intercompany_lines_query``: their item lines
  (``mainline = 'F'``), in line order. SuiteQL signs transaction lines as the ledger does: an invoice's item
  lines (revenue, a credit) come back with negative ``quantity`` and ``foreignamount``, a bill's (a debit)
  positive.

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
    "EXPENSE_CATEGORIES_QUERY",
    "EXPENSE_KEYS_END",
    "EXPENSE_KEYS_SELECT",
    "EXPENSE_REPORT_TYPE",
    "IC_BILL_TYPE",
    "IC_CHARGES_CONDITION",
    "IC_CHARGES_ORDER",
    "IC_CHARGES_SELECT",
    "IC_INVOICE_TYPE",
    "IC_LINES_END",
    "IC_LINES_SELECT",
    "PAYMENT_TYPE",
    "POSTED_EXPENSES_CONDITION",
    "POSTED_EXPENSES_ORDER",
    "POSTED_EXPENSES_SELECT",
    "POSTED_TIME_CONDITION",
    "POSTED_TIME_ORDER",
    "POSTED_TIME_SELECT",
    "POSTED_TOTALS_GROUP",
    "POSTED_TOTALS_SELECT",
    "RATE_CONDITION",
    "RATE_ORDER",
    "RATE_SELECT",
    "applications_query",
    "exchange_rate_query",
    "external_ids_query",
    "intercompany_charges_query",
    "intercompany_lines_query",
    "posted_expenses_query",
    "posted_time_query",
    "posted_time_totals_query",
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
POSTED_TOTALS_SELECT: Final = ("SELECT j.externalid AS job, c.symbol AS currency, SUM(t.hours) AS hours, "
                               "SUM(ROUND(t.hours * t.rate, 2)) AS amount, COUNT(t.id) AS lines FROM timebill t "
                               "JOIN job j ON j.id = t.customer JOIN currency c ON c.id = j.currency "
                               "WHERE t.isbillable = 'T' AND ")
POSTED_TOTALS_GROUP: Final = " GROUP BY j.externalid, c.symbol ORDER BY j.externalid"
"""The billable time of ``posted_time_query``'s conditions summed per job: each line's amount rounded as the
listing rounds it (Oracle's ROUND is half away from zero), then added."""

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

EXPENSE_REPORT_TYPE: Final = "ExpRept"
"""SuiteQL transaction type code of an expense report."""
POSTED_EXPENSES_SELECT: Final = (
    "SELECT t.id, t.custbody_psc_line_key AS linekey, j.externalid AS job, e.externalid AS employee, "
    "TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate, l.foreignamount AS amount, c.symbol AS currency, "
    "l.isbillable, x.name AS category FROM transaction t JOIN transactionline l ON l.transaction = t.id "
    "JOIN job j ON j.id = l.entity JOIN employee e ON e.id = t.entity JOIN currency c ON c.id = t.currency "
    "JOIN expensecategory x ON x.id = l.category "
    f"WHERE t.type = '{EXPENSE_REPORT_TYPE}' AND l.mainline = 'F' AND t.custbody_psc_line_key IS NOT NULL AND ")
POSTED_EXPENSES_ORDER: Final = " ORDER BY t.id, l.id"
POSTED_EXPENSES_CONDITION: Final = re.compile(r"^(?:j\.externalid = '([A-Za-z0-9_.:-]+)'|"
                                              r"t\.trandate (>=|<=) TO_DATE\('(\d{4}-\d{2}-\d{2})', 'YYYY-MM-DD'\)|"
                                              r"1 = 1)$")
"""One WHERE condition ``posted_expenses_query`` writes."""
EXPENSE_KEYS_SELECT: Final = (f"SELECT t.id, t.externalid FROM transaction t WHERE t.type = '{EXPENSE_REPORT_TYPE}' "
                              "AND t.externalid IN (")
EXPENSE_KEYS_END: Final = ")"
EXPENSE_CATEGORIES_QUERY: Final = "SELECT c.id, c.name, c.isinactive FROM expensecategory c ORDER BY c.id"
EXPENSE_JOBS_SELECT: Final = ("SELECT j.id, j.externalid, j.entitystatus, j.subsidiary, j.currency FROM job j "
                              "WHERE j.externalid IN (")
EXPENSE_EMPLOYEES_SELECT: Final = ("SELECT e.id, e.externalid, e.isinactive, e.subsidiary FROM employee e "
                                   "WHERE e.externalid IN (")
"""The jobs and employees a batch of expense lines names, one statement each instead of a GET per record
(a 200-line batch names up to 200 employees); each ends with ``EXPENSE_KEYS_END``."""
_KEY: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")

IC_INVOICE_TYPE: Final = "CustInvc"
IC_BILL_TYPE: Final = "VendBill"
"""SuiteQL transaction type codes of an invoice (the receivable side) and a vendor bill (the payable side)."""
IC_CHARGES_SELECT: Final = (
    "SELECT t.id, t.externalid, t.type, t.custbody_psc_ic_side AS side, t.custbody_psc_ic_counterparty AS "
    "counterparty, t.custbody_psc_ic_period AS period, c.symbol AS currency, m.subsidiary FROM transaction t "
    "JOIN transactionline m ON m.transaction = t.id AND m.mainline = 'T' JOIN currency c ON c.id = t.currency "
    f"WHERE t.type IN ('{IC_INVOICE_TYPE}', '{IC_BILL_TYPE}') AND t.custbody_psc_ic_side IS NOT NULL AND ")
IC_CHARGES_ORDER: Final = " ORDER BY t.id"
IC_CHARGES_CONDITION: Final = re.compile(r"^(?:t\.custbody_psc_ic_period = '(\d{4}-\d{2})'|"
                                         r"t\.custbody_psc_ic_counterparty = '([A-Z]{2}[0-9]{2})'|"
                                         r"t\.id = (\d{1,18})|1 = 1)$")
"""One WHERE condition ``intercompany_charges_query`` writes."""
IC_LINES_SELECT: Final = (
    "SELECT l.transaction, l.id, l.custcol_psc_line_key AS linekey, l.custcol_psc_ic_project AS project, "
    "l.custcol_psc_ic_employee AS employee, TO_CHAR(l.custcol_psc_ic_date, 'YYYY-MM-DD') AS linedate, "
    "l.quantity, l.rate, l.foreignamount AS amount FROM transactionline l WHERE l.mainline = 'F' AND "
    "l.transaction IN (")
IC_LINES_END: Final = ") ORDER BY l.transaction, l.id"
_PERIOD: Final = re.compile(r"^\d{4}-\d{2}$")
_ENTITY_CODE: Final = re.compile(r"^[A-Z]{2}[0-9]{2}$")


def posted_time_query(project_external_id: str | None, date_from: dt.date | None, date_to: dt.date | None) -> str:
    """The SuiteQL statement listing posted time; project ids are restricted to a quote-free alphabet."""
    return POSTED_TIME_SELECT + _period_conditions("j.externalid", "t.trandate", project_external_id, date_from,
                                                   date_to) + POSTED_TIME_ORDER


def posted_time_totals_query(project_external_id: str | None, date_from: dt.date | None,
                             date_to: dt.date | None) -> str:
    """The SuiteQL statement summing the billable time ``posted_time_query`` lists, per job."""
    return POSTED_TOTALS_SELECT + _period_conditions("j.externalid", "t.trandate", project_external_id, date_from,
                                                     date_to) + POSTED_TOTALS_GROUP


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


def _period_conditions(project: str, date_column: str, project_external_id: str | None, date_from: dt.date | None,
                       date_to: dt.date | None) -> str:
    conditions = []
    if project_external_id is not None:
        conditions.append(f"{project} = '{project_external_id}'")
    if date_from is not None:
        conditions.append(f"{date_column} >= TO_DATE('{date_from.isoformat()}', 'YYYY-MM-DD')")
    if date_to is not None:
        conditions.append(f"{date_column} <= TO_DATE('{date_to.isoformat()}', 'YYYY-MM-DD')")
    return " AND ".join(conditions) or "1 = 1"


def posted_expenses_query(project_external_id: str | None, date_from: dt.date | None,
                          date_to: dt.date | None) -> str:
    """The SuiteQL statement listing posted expenses; project ids are restricted to a quote-free alphabet."""
    if project_external_id is not None and not _KEY.match(project_external_id):
        raise ValueError("project external ids are restricted to [A-Za-z0-9_.:-]")
    return (POSTED_EXPENSES_SELECT + _period_conditions("j.externalid", "t.trandate", project_external_id, date_from,
                                                        date_to) + POSTED_EXPENSES_ORDER)


def external_ids_query(select: str, external_ids: Sequence[str]) -> str:
    """`select` (one of the ``…_SELECT`` statements ending in ``IN (``) for these external ids, each of the
    quote-free alphabet psconnect gives them."""
    if not external_ids or not all(_KEY.match(k) for k in external_ids):
        raise ValueError("external ids in a SuiteQL list are restricted to [A-Za-z0-9_.:-]{1,80}")
    return select + ", ".join(f"'{k}'" for k in external_ids) + EXPENSE_KEYS_END


def intercompany_charges_query(*, period: str | None = None, counterparty: str | None = None,
                               internal_id: str | None = None) -> str:
    """The intercompany documents of a period and/or counterparty (an entity code), or the one with an internal id."""
    conditions = []
    if period is not None:
        if not _PERIOD.match(period):
            raise ValueError("periods are YYYY-MM")
        conditions.append(f"t.custbody_psc_ic_period = '{period}'")
    if counterparty is not None:
        if not _ENTITY_CODE.match(counterparty):
            raise ValueError("counterparties are entity codes such as US01")
        conditions.append(f"t.custbody_psc_ic_counterparty = '{counterparty}'")
    if internal_id is not None:
        if not internal_id.isdigit():
            raise ValueError("internal ids are digits")
        conditions.append(f"t.id = {internal_id}")
    return IC_CHARGES_SELECT + (" AND ".join(conditions) or "1 = 1") + IC_CHARGES_ORDER


def intercompany_lines_query(transaction_ids: Sequence[str]) -> str:
    """The item lines of these intercompany documents (internal ids)."""
    if not transaction_ids or not all(i.isdigit() for i in transaction_ids):
        raise ValueError("transaction ids are NetSuite internal ids (digits)")
    return IC_LINES_SELECT + ", ".join(transaction_ids) + IC_LINES_END
