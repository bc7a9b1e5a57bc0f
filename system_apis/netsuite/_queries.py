"""The SuiteQL statements the NetSuite adapter sends (the simulator parses the same text back).

Only ``posted_time_query`` today: posted time (timeBills) of a project between two dates,
ordered by id so the adapter can page with OFFSET.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

__all__ = ["POSTED_TIME_CONDITION", "POSTED_TIME_ORDER", "POSTED_TIME_SELECT", "posted_time_query"]

POSTED_TIME_SELECT: Final = ("SELECT t.id, t.externalid, j.externalid AS job, e.externalid AS employee, "
                             "TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate, t.hours, t.rate, t.isbillable, "
                             "c.symbol AS currency FROM timebill t JOIN job j ON j.id = t.customer "
                             "JOIN employee e ON e.id = t.employee JOIN currency c ON c.id = j.currency WHERE ")
POSTED_TIME_ORDER: Final = " ORDER BY t.id"
POSTED_TIME_CONDITION: Final = re.compile(r"^(?:j\.externalid = '([A-Za-z0-9_.:-]+)'|"
                                          r"t\.trandate (>=|<=) TO_DATE\('(\d{4}-\d{2}-\d{2})', 'YYYY-MM-DD'\)|"
                                          r"1 = 1)$")
"""One WHERE condition ``posted_time_query`` writes."""


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
