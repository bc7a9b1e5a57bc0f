"""What the console writes for people: every bar named, ages in days and hours, a detail said once."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from web.console.ages import age, distinct_details
from web.console.summary import earlier_periods
from web.portal.charts import bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def labels(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text") if t.attrib.get("class") == "label"]


class TestEveryBarIsNamed:
    def test_a_few_wide_groups_are_each_labelled_flat(self) -> None:
        svg = bar_chart(["missing_tax_id", "currency_mismatch", "vendor_unavailable"], {"open": [2, 7, 1]},
                        title="Open exceptions by reason")
        assert labels(svg) == ["missing_tax_id", "currency_mismatch", "vendor_unavailable"]

    def test_sixty_narrow_groups_are_each_labelled_on_their_side(self) -> None:
        minutes = [f"10:{m:02d}" for m in range(60)]
        svg = bar_chart(minutes, {"requests": [1] * 60, "errors": [0] * 60}, title="Calls per minute")
        assert labels(svg) == minutes
        root = ET.fromstring(svg)
        assert all("rotate" in t.attrib.get("transform", "") for t in root.iter(f"{SVG}text")
                   if t.attrib.get("class") == "label")
        assert int(root.attrib["height"]) > 220  # room made below the bars for the turned labels


@pytest.mark.parametrize(("hours", "words"), [
    (0.0, "under 1 min"), (0.04, "2 min"), (0.5, "30 min"), (1.0, "1 h"), (3.34, "3 h 20 min"),
    (24.0, "1 d"), (53.1, "2 d 5 h"), (200.0, "8 d 8 h"),
])
def test_ages_read_in_days_and_hours(hours: float, words: str) -> None:
    assert age(hours) == words


def test_a_detail_repeated_by_several_violations_is_said_once_with_its_count() -> None:
    same = "line L-1: the ERP refused the posting (period closed)"
    assert distinct_details("; ".join([same] * 4 + ["line L-2: unknown project"])) == [
        (same, 4), ("line L-2: unknown project", 1)]


def test_a_trend_spans_the_periods_before_across_a_year_end() -> None:
    assert earlier_periods("2026-02", 2) == ["2025-12", "2026-01"]
