"""Dashboard charts: bars a reader can trust (lengths proportional to the figures, exact values in the
labels), sane output for empty and all-zero data, and labels that cannot inject markup."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from decimal import Decimal

import pytest

from web.portal.charts import column_chart, horizontal_bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def bars(svg: str) -> list[ET.Element]:
    return list(ET.fromstring(svg).iter(f"{SVG}rect"))


def attr(bar: ET.Element, name: str) -> float:
    return float(bar.attrib[name])


class TestColumnChart:
    def test_heights_are_proportional_to_values_and_carry_exact_figures(self) -> None:
        svg = column_chart(["Advisory", "Engineering"], {"planned": [Decimal("0.8125"), Decimal("0.4")],
                                                         "actual": [Decimal("0.2"), Decimal("0.6")]},
                           title="Utilization", description="Planned vs actual", chart_id="u")
        drawn = bars(svg)
        assert len(drawn) == 4
        by_key = {(b.attrib["data-label"], b.attrib["data-series"]): b for b in drawn}
        assert by_key["Advisory", "planned"].attrib["data-value"] == "0.8125"
        heights = {k: attr(b, "height") for k, b in by_key.items()}
        assert heights["Advisory", "planned"] / heights["Engineering", "planned"] == pytest.approx(0.8125 / 0.4, 0.01)
        assert heights["Engineering", "actual"] / heights["Advisory", "actual"] == pytest.approx(3, 0.01)
        # bars stand on one baseline: bottom edges agree
        bottoms = {round(attr(b, "y") + attr(b, "height"), 1) for b in drawn}
        assert len(bottoms) == 1
        # a separate colour per series, and a legend naming both
        assert {b.attrib["fill"] for b in drawn if b.attrib["data-series"] == "planned"} != \
               {b.attrib["fill"] for b in drawn if b.attrib["data-series"] == "actual"}
        assert "■ planned" in svg and "■ actual" in svg

    def test_every_label_is_written_and_the_chart_is_named_for_assistive_technology(self) -> None:
        svg = column_chart(["0-30", "31-60", "61-90", "90+"], {"USD": [1, 2, 3, 4]}, title="Aging USD",
                           description="Unbilled amount by age", chart_id="aging-usd")
        root = ET.fromstring(svg)
        labels = [t.text for t in root.iter(f"{SVG}text") if t.attrib.get("class") == "label"]
        assert labels == ["0-30", "31-60", "61-90", "90+"]
        assert root.attrib["role"] == "img"
        assert root.attrib["aria-labelledby"] == "aging-usd-title aging-usd-desc"
        assert root.find(f"{SVG}title").text == "Aging USD"  # type: ignore[union-attr]
        assert root.find(f"{SVG}desc").text == "Unbilled amount by age"  # type: ignore[union-attr]

    def test_all_zero_values_draw_flat_bars_without_dividing_by_zero(self) -> None:
        drawn = bars(column_chart(["a", "b"], {"x": [0, 0]}, title="t", description="d", chart_id="z"))
        assert [attr(b, "height") for b in drawn] == [0.0, 0.0]

    def test_no_data_says_so_and_draws_no_bars(self) -> None:
        svg = column_chart([], {"x": []}, title="t", description="d", chart_id="e")
        assert bars(svg) == []
        assert "No data" in svg


class TestHorizontalBarChart:
    def test_lengths_are_proportional_and_rows_follow_the_labels(self) -> None:
        svg = horizontal_bar_chart(["PRJ-1", "PRJ-2", "PRJ-3"],
                                   {"remaining": [Decimal("1000.00"), Decimal("250.00"), Decimal("500.00")]},
                                   title="Backlog", description="d", chart_id="b",
                                   fmt=lambda v: f"{v:,.2f} USD")
        drawn = bars(svg)
        widths = [attr(b, "width") for b in drawn]
        assert widths[0] / widths[1] == pytest.approx(4, 0.01) and widths[0] / widths[2] == pytest.approx(2, 0.01)
        ys = [attr(b, "y") for b in drawn]
        assert ys == sorted(ys)  # first label on top
        assert "1,000.00 USD" in svg  # the exact figure, formatted, beside the bar
        assert {b.attrib["x"] for b in drawn} == {drawn[0].attrib["x"]}  # all start at the zero line

    def test_each_series_writes_its_own_figure_beside_its_bar(self) -> None:
        svg = horizontal_bar_chart(["W-1"], {"planned": [Decimal("0.0920")], "actual": [Decimal("0.9915")]},
                                   title="t", description="d", chart_id="w", fmt=lambda v: f"{v * 100:.2f} %")
        root = ET.fromstring(svg)
        figures = [t.text for t in root.iter(f"{SVG}text") if t.attrib.get("class") == "value"]
        assert figures == ["9.20 %", "99.15 %"]

    def test_a_negative_value_extends_left_of_the_zero_line(self) -> None:
        drawn = bars(horizontal_bar_chart(["gain", "loss"], {"margin": [Decimal("300"), Decimal("-100")]},
                                          title="Margin", description="d", chart_id="m"))
        gain, loss = drawn
        assert attr(loss, "x") + attr(loss, "width") == pytest.approx(attr(gain, "x"), abs=0.1)
        assert attr(gain, "width") / attr(loss, "width") == pytest.approx(3, 0.01)

    def test_the_chart_grows_with_its_rows(self) -> None:
        def height(n: int) -> float:
            return float(ET.fromstring(horizontal_bar_chart([f"r{i}" for i in range(n)], {"c": list(range(n))},
                                                            title="t", description="d", chart_id="h"))
                         .attrib["height"])
        assert height(20) > height(5) > 0

    def test_empty_data_says_so(self) -> None:
        svg = horizontal_bar_chart([], {"count": []}, title="t", description="d", chart_id="e")
        assert bars(svg) == [] and "No data" in svg


@pytest.mark.parametrize("chart", [column_chart, horizontal_bar_chart])
def test_labels_titles_and_series_names_are_escaped(chart: Callable[..., str]) -> None:
    evil = '<script>alert("x")</script> & co'
    svg = chart([evil], {evil: [1]}, title=evil, description=evil, chart_id='x" onload="alert(1)')
    assert "<script>" not in svg and 'onload="' not in svg
    root = ET.fromstring(svg)  # still well-formed XML
    bar = next(root.iter(f"{SVG}rect"))
    assert bar.attrib["data-label"] == evil and bar.attrib["data-series"] == evil
    assert root.find(f"{SVG}title").text == evil  # type: ignore[union-attr]


@pytest.mark.parametrize("values", [[Decimal("5")], [Decimal("-3"), Decimal("7"), Decimal("0")],
                                    [Decimal(i) for i in range(40)]])
def test_every_bar_stays_inside_the_drawing(values: list[Decimal]) -> None:
    labels = [f"label {i}" for i in range(len(values))]
    for svg in (column_chart(labels, {"a": values, "b": values}, title="t", description="d", chart_id="c"),
                horizontal_bar_chart(labels, {"a": values}, title="t", description="d", chart_id="h")):
        root = ET.fromstring(svg)
        width, height = float(root.attrib["width"]), float(root.attrib["height"])
        for bar in bars(svg):
            assert attr(bar, "x") >= 0 and attr(bar, "x") + attr(bar, "width") <= width + 0.1
            assert attr(bar, "y") >= 0 and attr(bar, "y") + attr(bar, "height") <= height + 0.1
