"""The simulator's custom fields: sets, fields, choices and values, and the seeding of the expense terms.

Wire shapes follow the Kantata OX reference: a custom field set (`subject_type` "Workspace")
holds custom fields (`name`, `value_type` string/number/date/currency/single/multi,
`choice_ids`, `custom_field_set_id`); single/multi fields have custom field choices
(`custom_field_id`, `label`); a custom field value ties a field to a subject (`subject_type`,
`subject_id`, `custom_field_id`, `custom_field_name`, `type`, `value`, `display_value`).
`GET /custom_field_values` requires `subject_type` and filters by `with_subject_id` and
`for_custom_field_id`; `GET /custom_field_choices` filters by `for_choice_ids`
(https://developer.kantata.com/tag/Custom-Field-Values,
https://developer.kantata.com/tag/Custom-Field-Choices). A workspace lists its values in
`custom_field_value_ids`, so `include=custom_field_values` brings them with it.

Value encodings (the adapter's `_expense_mapping.py` reads the same): number -> a JSON number,
currency -> an integer in the minor unit (display "$75.00"), multi -> the selected choice ids.
"""

from __future__ import annotations

from typing import Protocol

from contracts.psa import ExpenseTerms
from system_apis.kantata._expense_mapping import CAP_PREFIX, CATEGORIES_FIELD, MARKUP_FIELD, RECEIPT_FIELD
from system_apis.kantata.mapping import format_price, to_minor
from system_apis.kantata.simulator._delivery import Invalid, Record

__all__ = ["CUSTOM_FIELD_TABLES", "ExpenseTermsSeeder", "custom_field_filter"]

CUSTOM_FIELD_TABLES = ("custom_field_sets", "custom_fields", "custom_field_choices", "custom_field_values")


class _Store(Protocol):
    tables: dict[str, dict[str, Record]]
    me_id: str

    def _insert(self, table: str, record: Record) -> str: ...


def custom_field_filter(table: str, rows: list[Record], query: dict[str, str]) -> list[Record]:
    """Kantata's filters of the custom field tables; id filters take comma-separated lists."""
    if table == "custom_field_values":
        if not query.get("subject_type"):
            raise Invalid("subject_type", "Subject type is required")
        rows = [r for r in rows if r["subject_type"] == query["subject_type"]]
        for name, field in (("with_subject_id", "subject_id"), ("for_custom_field_id", "custom_field_id")):
            if name in query:
                wanted = set(query[name].split(","))
                rows = [r for r in rows if str(r[field]) in wanted]
    if table == "custom_field_choices" and "for_choice_ids" in query:
        wanted = set(query["for_choice_ids"].split(","))
        rows = [r for r in rows if r["id"] in wanted]
    if table == "custom_fields" and "custom_field_set_id" in query:
        rows = [r for r in rows if r["custom_field_set_id"] == query["custom_field_set_id"]]
    return rows


class ExpenseTermsSeeder:
    """Writes a workspace's `ExpenseTerms` as custom field values, creating each field on first use."""

    def __init__(self, sim: _Store) -> None:
        self._sim = sim
        self._set: str | None = None
        self._fields: dict[str, str] = {}
        self._choices: dict[str, str] = {}  # label -> choice id, of the categories field

    def _field(self, name: str, value_type: str) -> str:
        if name not in self._fields:
            if self._set is None:
                self._set = self._sim._insert("custom_field_sets", {"name": "Contract terms", "subject_type":
                                                                    "Workspace"})
            self._fields[name] = self._sim._insert("custom_fields", {
                "name": name, "value_type": value_type, "custom_field_set_id": self._set, "choice_ids": [],
                "read_access": "financial", "write_access": "project_admin", "default_text": None,
                "unique_constraint": False, "creator_id": self._sim.me_id})
        return self._fields[name]

    def _choice(self, label: str) -> str:
        if label not in self._choices:
            field_id = self._field(CATEGORIES_FIELD, "multi")
            self._choices[label] = self._sim._insert("custom_field_choices", {"custom_field_id": field_id,
                                                                              "label": label})
            self._sim.tables["custom_fields"][field_id]["choice_ids"].append(self._choices[label])
        return self._choices[label]

    def _value(self, wid: str, name: str, value_type: str, value: object, display: str) -> None:
        self._sim._insert("custom_field_values", {
            "subject_type": "Workspace", "subject_id": wid, "custom_field_id": self._field(name, value_type),
            "custom_field_name": name, "type": value_type, "value": value, "display_value": display,
            "can_edit": True, "setter_id": self._sim.me_id})

    def seed(self, wid: str, terms: ExpenseTerms) -> None:
        ids = [self._choice(label) for label in terms.billable_categories]
        self._value(wid, CATEGORIES_FIELD, "multi", ids, ", ".join(terms.billable_categories))
        markup = terms.markup_percent
        self._value(wid, MARKUP_FIELD, "number", int(markup) if markup == markup.to_integral_value()
                    else float(markup), f"{markup.normalize():f}")
        for name, money in [(RECEIPT_FIELD, terms.receipt_required_above),
                            *((f"{CAP_PREFIX}{category}", cap) for category, cap in sorted(terms.caps.items()))]:
            minor = to_minor(money)
            self._value(wid, name, "currency", minor, format_price(minor, money.currency))
