"""The SOQL subset the Salesforce-platform simulators understand: what `ForceRestClient` callers emit.

    SELECT f1, f2 FROM Object [WHERE Field op literal [AND ...]] [ORDER BY Field [ASC|DESC]] [LIMIT n]

op is one of = != < <= > >= or IN ('a', 'b'); a field may be a parent relationship path
(`pse__Project__r.External_Id__c`) when the schema lists it; a literal is a quoted string (with backslash escapes),
true/false/null, a number, an unquoted date or dateTime (UTC). Anything else is MALFORMED_QUERY, an
unknown object INVALID_TYPE and an unknown field INVALID_FIELD, as Salesforce answers.
https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select.htm
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final, NamedTuple

from system_apis._internal.instants import utc_text

__all__ = ["Condition", "SoqlError", "SoqlQuery", "matches", "parse", "record_instant"]

_QUERY = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>\w+)(?:\s+(?P<direction>ASC|DESC))?)?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_LITERAL = (r"'(?:[^'\\]|\\.)*'|true\b|false\b|null\b"
            r"|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{3})?(?:Z|[+-]\d{2}:?\d{2})"
            r"|\d{4}-\d{2}-\d{2}\b|-?\d+(?:\.\d+)?")
_CONDITION = re.compile(
    r"\s*(?P<field>[\w.]+)\s*(?:(?P<op>!=|<=|>=|=|<|>)\s*(?P<value>" + _LITERAL + r")"
    r"|(?P<in>IN)\s*\((?P<list>\s*(?:" + _LITERAL + r")(?:\s*,\s*(?:" + _LITERAL + r"))*)\s*\))\s*",
    re.IGNORECASE | re.DOTALL,
)
_LIST_ITEM = re.compile(r"\s*(" + _LITERAL + r")\s*(?:,|$)", re.IGNORECASE | re.DOTALL)
_AND = re.compile(r"AND\b", re.IGNORECASE)
_UNESCAPE: Final = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


class SoqlError(Exception):
    """A query Salesforce would refuse with 400 and this errorCode."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Condition(NamedTuple):
    field: str
    op: str
    value: Any


class SoqlQuery(NamedTuple):
    sobject: str
    fields: list[str]
    where: list[Condition]
    order_by: str | None
    descending: bool
    limit: int | None


def _literal(token: str) -> Any:
    lowered = token.lower()
    if token.startswith("'"):
        body, out, i = token[1:-1], [], 0
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body):
                out.append(_UNESCAPE.get(body[i + 1], body[i + 1]))
                i += 2
            else:
                out.append(body[i])
                i += 1
        return "".join(out)
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if "T" in token:
        return _datetime(token)
    if "-" in token[1:]:
        return token  # a date literal compares as its ISO text
    return Decimal(token)


def record_instant(moment: dt.datetime) -> str:
    """A dateTime as Salesforce records hold it (``2026-10-05T18:00:00.000+0000``): text order is time order."""
    return f"{utc_text(moment, 'milliseconds')}+0000"


def _datetime(token: str) -> str:
    """A dateTime literal of a query, as records hold it, so the two compare as text."""
    return record_instant(dt.datetime.fromisoformat(token.replace("Z", "+00:00")))


def _where(text: str) -> list[Condition]:
    conditions: list[Condition] = []
    pos = 0
    while True:
        match = _CONDITION.match(text, pos)
        if not match:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token near: {text[pos:pos + 30]!r}")
        if match["in"]:
            values = frozenset(_literal(m.group(1)) for m in _LIST_ITEM.finditer(match["list"]))
            conditions.append(Condition(match["field"], "IN", values))
        else:
            conditions.append(Condition(match["field"], match["op"], _literal(match["value"])))
        pos = match.end()
        if pos >= len(text):
            return conditions
        conjunction = _AND.match(text, pos)
        if not conjunction:
            raise SoqlError("MALFORMED_QUERY", f"only AND is supported, near: {text[pos:pos + 30]!r}")
        pos = conjunction.end()


def parse(soql: str, schema: Mapping[str, frozenset[str]]) -> SoqlQuery:
    """Parse `soql` against `schema` (object name -> field names)."""
    match = _QUERY.match(soql)
    if not match:
        raise SoqlError("MALFORMED_QUERY", f"unexpected query: {soql[:80]!r}")
    sobject = match["object"]
    fields_known = schema.get(sobject)
    if fields_known is None:
        raise SoqlError("INVALID_TYPE", f"sObject type '{sobject}' is not supported. If you are attempting to use "
                        "a custom object, be sure to append the '__c' after the entity name.")
    fields = [f.strip() for f in match["fields"].split(",")]
    where = _where(match["where"]) if match["where"] else []
    for name in [*fields, *(c.field for c in where), *([match["order"]] if match["order"] else [])]:
        if name not in fields_known:
            raise SoqlError("INVALID_FIELD", f"No such column '{name}' on entity '{sobject}'. If you are attempting "
                            "to use a custom field, be sure to append the '__c' after the custom field name.")
    return SoqlQuery(sobject=sobject, fields=fields, where=where, order_by=match["order"],
                     descending=(match["direction"] or "").upper() == "DESC",
                     limit=int(match["limit"]) if match["limit"] else None)


def _holds(actual: Any, condition: Condition) -> bool:
    expected, op = condition.value, condition.op
    if op == "IN":
        return actual in expected
    if condition.field == "Id" and isinstance(expected, str) and len(expected) == 15 and op in ("=", "!="):
        actual = str(actual)[:15]  # a 15-character id names the same record as its 18-character form
    elif isinstance(actual, str) and isinstance(expected, str) and condition.field != "Id":
        actual, expected = actual.casefold(), expected.casefold()  # text comparisons ignore case in SOQL
    if op == "=":
        return bool(actual == expected)
    if op == "!=":
        return bool(actual != expected)
    if actual is None or expected is None:
        return False
    try:
        if op == "<":
            return bool(actual < expected)
        if op == "<=":
            return bool(actual <= expected)
        if op == ">":
            return bool(actual > expected)
        return bool(actual >= expected)
    except TypeError:
        return False


def matches(record: Mapping[str, Any], where: list[Condition]) -> bool:
    return all(_holds(record.get(c.field), c) for c in where)
