"""The simulator's delivery half: roles, rate cards, staffing, users, time entries, timesheet submissions.

Kept apart from `simulator/__init__.py` (request handling, workspaces, faults) so each stays
readable. Wire shapes follow the Kantata OX reference
(https://developer.kantata.com/kantata/specification): rate cards -> rate card versions
(`effective_date`) -> rate card roles (`rate` in cents per hour for a `role_id`);
workspace resources (`user_id`, `role_id`, `workspace_id`) with workspace allocations
(`resource_id`, `start_date`, `end_date`, `minutes`); time entries (`date_performed`,
`time_in_minutes`, `billable`, `approved`, `rate_in_cents`); timesheet submissions
(`user_id`, `workspace_id`, `start_date`, `end_date`, `status`, `time_entry_ids`),
decided with `PUT /timesheet_submissions/{id}/approve|reject`.

Simplifications, said out loud: a user's role key, practice and cost rate sit on the
user record (Kantata spreads them over account memberships, custom fields and cost
rates); a time entry carries `timesheet_submission_id`, the latest submission that
holds it, so a list can show "submitted" without a second query.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from system_apis.kantata.mapping import base_unit

__all__ = ["DeliveryResources", "Invalid", "Record", "now"]

Record = dict[str, Any]
DELIVERY_TABLES = ("roles", "rate_cards", "rate_card_versions", "rate_card_roles", "workspace_resources",
                   "workspace_allocations", "time_entries", "timesheet_submissions")
_USER_FIELDS = ("full_name", "email_address", "headline", "disabled", "role_key", "practice", "cost_rate_in_cents",
                "cost_rate_currency")
_ENTRY_FIELDS = ("date_performed", "time_in_minutes", "billable", "notes", "story_id")


class Invalid(Exception):
    """A request Kantata refuses; rendered as its `{"errors": [...]}` envelope."""

    def __init__(self, field: str, message: str, status: int = 422, kind: str = "validation") -> None:
        super().__init__(message)
        self.field, self.message, self.status, self.kind = field, message, status, kind


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _day(attrs: Record, name: str) -> str:
    value = attrs.get(name)
    try:
        return dt.date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError as exc:
        raise Invalid(name, f"{name.replace('_', ' ').capitalize()} is not a valid date") from exc


class DeliveryResources:
    """Mixin over the simulator's tables; `KantataSimulator` supplies the storage primitives."""

    tables: dict[str, dict[str, Record]]
    me_id: str

    def _insert(self, table: str, record: Record) -> str:
        raise NotImplementedError

    def _get(self, table: str, rid: str) -> Record:
        raise NotImplementedError

    def save_extref(self, attrs: Record) -> str:
        raise NotImplementedError

    def _check_extref(self, ref: Any) -> Record:
        raise NotImplementedError

    # --- users ------------------------------------------------------------------------------------

    def _user_attrs(self, user: Record, attrs: Record, uid: str | None) -> None:
        for name in _USER_FIELDS:
            if name in attrs:
                user[name] = attrs[name]
        if not str(user.get("full_name") or "").strip():
            raise Invalid("full_name", "Full name can't be blank")
        email = str(user.get("email_address") or "").strip().lower()
        if "@" not in email:
            raise Invalid("email_address", "Email address is invalid")
        if any(u.get("email_address", "").lower() == email and u["id"] != uid for u in self.tables["users"].values()):
            raise Invalid("email_address", "Email address has already been taken")

    def create_user(self, attrs: Record) -> str:
        user: Record = {"disabled": False, "headline": ""}
        self._user_attrs(user, attrs, None)  # validate everything first: the create is atomic
        ref = self._check_extref(attrs["external_reference"]) if "external_reference" in attrs else None
        uid = self._insert("users", user)
        if ref is not None:
            self._insert("external_references", {"subject_type": "User", "subject_id": uid, **ref})
        return uid

    def update_user(self, uid: str, attrs: Record) -> None:
        user = dict(self._get("users", uid))
        self._user_attrs(user, attrs, uid)
        user["updated_at"] = now()
        self.tables["users"][uid] = user

    # --- rates ------------------------------------------------------------------------------------

    def rate_in_cents(self, workspace_id: str, user_id: str, on: str) -> int | None:
        """What Kantata would price an hour at: the user's resource role on the workspace's rate card."""
        card = self.tables["workspaces"].get(workspace_id, {}).get("rate_card_id")
        role = next((r["role_id"] for r in self.tables["workspace_resources"].values()
                     if r["workspace_id"] == workspace_id and r.get("user_id") == user_id), None)
        if card is None or role is None:
            return None
        versions = sorted((v for v in self.tables["rate_card_versions"].values()
                           if v["rate_card_id"] == card and v["effective_date"] <= on),
                          key=lambda v: str(v["effective_date"]))
        if not versions:
            return None
        return next((int(r["rate"]) for r in self.tables["rate_card_roles"].values()
                     if r["rate_card_version_id"] == versions[-1]["id"] and r["role_id"] == role),
                    int(versions[-1].get("default_rate") or 0))

    # --- time entries -------------------------------------------------------------------------------

    def create_time_entry(self, attrs: Record) -> str:
        wid, uid = str(attrs.get("workspace_id") or ""), str(attrs.get("user_id") or self.me_id)
        if wid not in self.tables["workspaces"]:
            raise Invalid("workspace_id", "Workspace can't be blank or does not exist")
        self._get("users", uid)
        entry: Record = {"workspace_id": wid, "user_id": uid, "billable": True, "approved": False, "notes": "",
                         "story_id": None, "invoice_id": None, "timesheet_submission_id": None}
        self._entry_attrs(entry, attrs)
        return self._insert("time_entries", entry)

    def _entry_attrs(self, entry: Record, attrs: Record) -> None:
        for name in _ENTRY_FIELDS:
            if name in attrs:
                entry[name] = attrs[name]
        entry["date_performed"] = _day(entry, "date_performed")
        minutes = entry.get("time_in_minutes")
        if not isinstance(minutes, int) or not 0 < minutes <= 24 * 60:
            raise Invalid("time_in_minutes", "Time in minutes must be between 1 and 1440")
        currency = str(self.tables["workspaces"][entry["workspace_id"]].get("currency") or "USD")
        entry["currency"], entry["currency_base_unit"] = currency, base_unit(currency)
        if "rate_in_cents" in attrs:
            entry["rate_in_cents"] = attrs["rate_in_cents"]
        elif entry.get("rate_in_cents") is None:
            entry["rate_in_cents"] = self.rate_in_cents(entry["workspace_id"], entry["user_id"],
                                                        entry["date_performed"])

    def update_time_entry(self, eid: str, attrs: Record) -> None:
        """Changing approved time takes it out of approval: it must be submitted and approved again."""
        entry = dict(self._get("time_entries", eid))
        if entry.get("invoice_id"):
            raise Invalid("base", "Time entries that have been invoiced cannot be edited")
        self._entry_attrs(entry, attrs)
        entry.update(approved=False, updated_at=now())
        self.tables["time_entries"][eid] = entry

    # --- timesheet submissions ----------------------------------------------------------------------

    def create_submission(self, attrs: Record) -> str:
        wid, uid = str(attrs.get("workspace_id") or ""), str(attrs.get("user_id") or self.me_id)
        if wid not in self.tables["workspaces"]:
            raise Invalid("workspace_id", "Workspace can't be blank or does not exist")
        start, end = _day(attrs, "start_date"), _day(attrs, "end_date")
        if end < start:
            raise Invalid("end_date", "End date must be on or after the start date")
        pending = {s["id"] for s in self.tables["timesheet_submissions"].values() if s["status"] == "pending"}
        entries = [e["id"] for e in self.tables["time_entries"].values()
                   if e["workspace_id"] == wid and e["user_id"] == uid and start <= e["date_performed"] <= end
                   and not e["approved"] and e.get("timesheet_submission_id") not in pending]
        if not entries:
            raise Invalid("base", "There is no unsubmitted time for this person, project and period")
        return self.add_submission(wid, uid, start, end, entries, "pending", comment=attrs.get("comment"))

    def add_submission(self, wid: str, uid: str, start: str, end: str, entry_ids: list[str], status: str, *,
                       comment: object = None, resolved_at: str | None = None) -> str:
        sid = self._insert("timesheet_submissions", {
            "workspace_id": wid, "user_id": uid, "start_date": start, "end_date": end, "status": status,
            "time_entry_ids": entry_ids, "comment": comment, "resolution_description": None,
            "resolved_at": resolved_at})
        for eid in entry_ids:
            entry = self.tables["time_entries"][eid]
            entry["timesheet_submission_id"] = sid
            entry["approved"] = status == "approved"
        return sid

    def decide_submission(self, sid: str, action: str, body: Any) -> None:
        submission = self._get("timesheet_submissions", sid)
        if submission["status"] != "pending":
            raise Invalid("status", f"Timesheet submission has already been {submission['status']}")
        resolution = body.get("resolution") if isinstance(body, dict) else None
        stamp = now()
        submission.update(status="approved" if action == "approve" else "rejected", resolved_at=stamp,
                          updated_at=stamp,
                          resolution_description=(resolution or {}).get("description") if isinstance(
                              resolution, dict) else None)
        if action == "approve":
            for eid in submission["time_entry_ids"]:
                self.tables["time_entries"][eid].update(approved=True, updated_at=stamp)

    # --- filters ------------------------------------------------------------------------------------

    def delivery_filter(self, table: str, rows: list[Record], query: dict[str, str]) -> list[Record]:
        """Kantata's filters for the delivery tables; a comma-separated value matches any of its ids."""
        by_id = {"workspace_resources": ("workspace_id", "user_id"), "workspace_allocations": ("resource_id",),
                 "rate_card_versions": ("rate_card_id",), "rate_card_roles": ("rate_card_version_id",),
                 "time_entries": ("workspace_id", "user_id"),
                 "timesheet_submissions": ("workspace_id", "user_id", "status")}.get(table, ())
        for name in by_id:
            if name in query:
                wanted = set(query[name].split(","))
                rows = [r for r in rows if str(r.get(name)) in wanted]
        if table == "time_entries":
            if "approved" in query:  # Kantata quirk: present means true, whatever the value
                rows = [r for r in rows if r.get("approved")]
            if "date_performed_between" in query:
                start, _, end = query["date_performed_between"].partition(":")
                rows = [r for r in rows if start <= r["date_performed"] <= (end or "9999-12-31")]
        return rows
