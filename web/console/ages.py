"""How the console words an exception: its age in days and hours ("2 d 5 h", not "53.1 h"), its detail once.

The workbench API answers an age in decimal hours (0.04); nobody triages by that.
"""

from __future__ import annotations

__all__ = ["age", "distinct_details"]


def age(hours: float) -> str:
    """Days and hours from a day on, hours and minutes under a day, minutes under an hour."""
    minutes = max(0, round(hours * 60))
    days, rest = divmod(minutes, 24 * 60)
    whole_hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {whole_hours} h" if whole_hours else f"{days} d"
    if whole_hours:
        return f"{whole_hours} h {mins} min" if mins else f"{whole_hours} h"
    return "under 1 min" if minutes == 0 else f"{mins} min"


def distinct_details(detail: str) -> list[tuple[str, int]]:
    """An exception's detail as its distinct parts, each once with how often it was given.

    The exception store joins every violation's detail with "; "; a run that hit the same
    refusal on several lines otherwise shows the same sentence again and again.
    """
    counts: dict[str, int] = {}
    for part in (p.strip() for p in detail.split("; ")):
        if part:
            counts[part] = counts.get(part, 0) + 1
    return list(counts.items())
