"""Kantata OX wire records <-> canonical PSA objects. Pure functions, no I/O.

Where the canonical project has no Kantata attribute of its own, the mapping uses
the Kantata feature built for that purpose rather than inventing a field:

- **client_name** — Kantata models a client company as a *workspace group* with
  `company: true` (https://developer.kantata.com/#tag/Workspace-Groups); a workspace
  joins it through `workspace_group_ids`. (`client_role_name` is only the label of the
  client *role*, e.g. "Client", and `creator`/`participants` are users, not companies.)
- **external_id / erp_project_id** — external references
  (https://developer.kantata.com/#tag/External-References), `service_model_ref` holding
  the foreign key; ours use service_name "psconnect", the ERP's "erp".
- **billing_terms** — `stories_are_fixed_fee_by_default` plus per-milestone `fixed_fee`:
  fixed-fee default -> fixed_fee; T&M default with at least one fixed-fee milestone ->
  mixed; otherwise time_and_materials. (A "mixed" project with no priced milestone
  therefore reads back as time_and_materials: Kantata has no third state to keep it.)
- **status** — Kantata statuses are account-configurable `{key, message, color}`;
  the colour group is stable, so reading maps by colour (grey = not started, blue =
  completed, anything else = active) and writing uses the default keys below.

Money travels as integer minor units (`price_in_cents`, `budget_estimate_in_cents`)
scaled by `currency_base_unit` (100 for USD, 1 for JPY); an amount that does not fit
the currency's minor unit is refused rather than rounded.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Final, Literal

from contracts.common import Money
from contracts.psa import PsaMilestone, PsaProject, PsaProjectUpsert

__all__ = [
    "ERP_SERVICE_NAME",
    "SERVICE_MODEL",
    "SERVICE_NAME",
    "STATUS_KEYS",
    "MappingError",
    "base_unit",
    "billing_terms_of",
    "external_reference",
    "format_price",
    "from_minor",
    "milestone_key",
    "milestone_to_story",
    "project_to_workspace",
    "status_of",
    "story_to_milestone",
    "to_minor",
    "workspace_to_project",
]

SERVICE_NAME: Final = "psconnect"
SERVICE_MODEL: Final = "project"
ERP_SERVICE_NAME: Final = "erp"

Status = Literal["not_started", "active", "completed"]
BillingTerms = Literal["time_and_materials", "fixed_fee", "mixed"]

STATUS_KEYS: Final[dict[Status, dict[str, Any]]] = {
    "not_started": {"key": 110, "message": "Not Started", "color": "grey"},
    "active": {"key": 310, "message": "Active", "color": "green"},
    "completed": {"key": 510, "message": "Completed", "color": "blue"},
}
"""Default Kantata project statuses (key, label, colour) used when we set a status."""

_EXPONENT: Final = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "HUF": 2,
                    "BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3, "TND": 3}
_SYMBOL: Final = {"USD": "$", "GBP": "£", "EUR": "€", "JPY": "¥", "CAD": "$", "AUD": "$"}


class MappingError(ValueError):
    """A canonical value Kantata cannot hold exactly; `field` names it for a problem's errors[]."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def base_unit(currency: str) -> int:
    """Minor units per major unit, what Kantata calls `currency_base_unit`."""
    return int(10 ** _EXPONENT.get(currency, 2))


def to_minor(money: Money, field: str = "amount") -> int:
    """Exact integer minor units; a fraction of a cent is an error, never silently rounded."""
    scaled = money.amount * base_unit(money.currency)
    if scaled != scaled.to_integral_value():
        raise MappingError(field, f"{money.amount} {money.currency} is finer than the currency's minor unit")
    return int(scaled)


def from_minor(minor: int, currency: str, unit: int | None = None) -> Money:
    unit = unit or base_unit(currency)
    exponent = len(str(unit)) - 1
    return Money(amount=(Decimal(minor) / unit).quantize(Decimal(1).scaleb(-exponent)), currency=currency)


def format_price(minor: int, currency: str) -> str:
    """Kantata's display string for `price`, e.g. "$1,250.00"."""
    money = from_minor(minor, currency)
    symbol = _SYMBOL.get(currency, currency + " ")
    return f"{symbol}{money.amount:,}"


def _date(value: object) -> dt.date | None:
    return dt.date.fromisoformat(value[:10]) if isinstance(value, str) and value else None


def status_of(status: object) -> Status:
    """Canonical status from Kantata's `{key, message, color}` hash or a bare status string."""
    if isinstance(status, dict):
        color = str(status.get("color") or "").lower()
        message = str(status.get("message") or "").lower()
    else:
        color, message = "", str(status or "").lower()
    if color == "grey" or message in ("not started", "not_started", "prospect", "estimate"):
        return "not_started"
    if color == "blue" or message in ("completed", "delivered", "closed", "cancelled"):
        return "completed"
    return "active"


def billing_terms_of(workspace: dict[str, Any], stories: list[dict[str, Any]]) -> BillingTerms:
    if workspace.get("stories_are_fixed_fee_by_default"):
        return "fixed_fee"
    if any(s.get("fixed_fee") for s in stories if s.get("story_type") == "milestone"):
        return "mixed"
    return "time_and_materials"


def story_to_milestone(story: dict[str, Any], currency: str) -> PsaMilestone:
    due = _date(story.get("due_date"))
    if due is None:
        raise MappingError("due_date", f"milestone story {story.get('id')} has no due date")
    cents = story.get("budget_estimate_in_cents")
    amount = from_minor(int(cents), currency) if story.get("fixed_fee") and cents is not None else None
    return PsaMilestone(name=str(story.get("title") or ""), due_date=due, amount=amount)


def milestone_key(name: str, due_date: dt.date | str | None) -> tuple[str, str]:
    """How a re-run recognises a milestone it already created: title + due date."""
    due = due_date.isoformat() if isinstance(due_date, dt.date) else (due_date or "")[:10]
    return name.strip().casefold(), due


def milestone_to_story(milestone: PsaMilestone, workspace_id: str, *, currency: str,
                       terms: BillingTerms, index: int = 0) -> dict[str, Any]:
    fixed = terms == "fixed_fee" or (terms == "mixed" and milestone.amount is not None)
    story: dict[str, Any] = {"workspace_id": workspace_id, "title": milestone.name, "story_type": "milestone",
                             "due_date": milestone.due_date.isoformat(), "fixed_fee": fixed}
    if milestone.amount is not None:
        if milestone.amount.currency != currency:
            raise MappingError(f"milestones[{index}].amount.currency",
                               f"{milestone.amount.currency} differs from the project currency {currency}")
        story["budget_estimate_in_cents"] = to_minor(milestone.amount, f"milestones[{index}].amount.amount")
    return story


def external_reference(external_id: str, service_name: str = SERVICE_NAME) -> dict[str, Any]:
    return {"service_name": service_name, "service_model": SERVICE_MODEL, "service_model_ref": external_id}


def project_to_workspace(data: PsaProjectUpsert, *, workspace_group_id: str | None) -> dict[str, Any]:
    """Workspace attributes for create/update; the external reference is added by the caller on create."""
    if data.start_date and data.due_date and data.due_date < data.start_date:
        raise MappingError("due_date", "due date is before the start date")
    to_minor(data.budget, "budget.amount")  # refuse sub-cent budgets before any vendor call
    attrs: dict[str, Any] = {
        "title": data.title,
        "budgeted": True,
        "currency": data.budget.currency,
        # Kantata's create/update attribute is `price` in major units; it answers price_in_cents.
        "price": str(data.budget.amount),
        "start_date": data.start_date.isoformat() if data.start_date else None,
        "due_date": data.due_date.isoformat() if data.due_date else None,
        "stories_are_fixed_fee_by_default": data.billing_terms == "fixed_fee",
    }
    if workspace_group_id is not None:
        attrs["workspace_group_ids"] = [workspace_group_id]
    return attrs


def workspace_to_project(workspace: dict[str, Any], *, external_references: list[dict[str, Any]],
                         workspace_groups: list[dict[str, Any]], stories: list[dict[str, Any]]) -> PsaProject:
    """Canonical project from a workspace and its included references, groups and stories."""
    currency = str(workspace.get("currency") or "USD")
    unit = workspace.get("currency_base_unit")
    cents = workspace.get("price_in_cents")
    budget = from_minor(int(cents), currency, int(unit) if unit else None) if cents is not None and \
        workspace.get("budgeted", True) else from_minor(0, currency)
    ours = [r for r in external_references if r.get("subject_type", "Workspace") == "Workspace"]
    ext = next((r["service_model_ref"] for r in ours if r.get("service_name") == SERVICE_NAME), "")
    erp = next((r["service_model_ref"] for r in ours if r.get("service_name") == ERP_SERVICE_NAME), None)
    company = next((g for g in workspace_groups if g.get("company")), None)
    milestones = sorted((story_to_milestone(s, currency) for s in stories if s.get("story_type") == "milestone"
                         and not s.get("archived")), key=lambda m: (m.due_date, m.name))
    return PsaProject(
        id=str(workspace["id"]), external_id=str(ext), title=str(workspace.get("title") or ""),
        client_name=str(company["name"]) if company else "",
        status=status_of(workspace.get("status")), budget=budget,
        billing_terms=billing_terms_of(workspace, stories),
        start_date=_date(workspace.get("start_date")), due_date=_date(workspace.get("due_date")),
        milestones=milestones, erp_project_id=str(erp) if erp is not None else None,
    )
