"""Charts drawn as inline SVG on the server: no chart library to load, nothing from a CDN."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from html import escape

__all__ = ["Formatter", "Number", "bar_chart", "column_chart", "horizontal_bar_chart"]


def bar_chart(labels: Sequence[str], series: dict[str, Sequence[float]], *, title: str, width: int = 720,
              height: int = 220) -> str:
    """Grouped bars, one colour per series, with a y-axis maximum and every group's label under its bars."""
    colours = ["#1f5fbf", "#b42318", "#9a6400", "#1d7a46"]
    top = max([v for values in series.values() for v in values] + [1.0])
    pad, plot_h = 30, height - 60
    groups = max(1, len(labels))
    group_w = (width - 2 * pad) / groups
    bar_w = max(1.0, group_w / (len(series) + 1))
    slanted = group_w < 40  # too narrow to write a label flat: turned on its side, with room made below
    full_h = height + (36 if slanted else 0)
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{full_h}" '
             f'viewBox="0 0 {width} {full_h}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="{pad}" y="18" font-size="13" font-weight="600">{escape(title)}</text>',
             f'<text x="{pad}" y="34" font-size="11" fill="#5b6472">max {top:g}</text>']
    for s, (name, values) in enumerate(series.items()):
        for i, value in enumerate(values):
            h = plot_h * value / top
            x = pad + i * group_w + s * bar_w
            parts.append(f'<rect class="bar {escape(name)}" x="{x:.1f}" y="{40 + plot_h - h:.1f}" width="{bar_w:.1f}" '
                         f'height="{h:.1f}" fill="{colours[s % len(colours)]}"><title>{escape(name)} '
                         f'{escape(labels[i])}: {value:g}</title></rect>')
        parts.append(f'<text x="{width - 160}" y="{18 + 14 * s}" font-size="11" fill="{colours[s % len(colours)]}">'
                     f'■ {escape(name)}</text>')
    # Every group is named under its bars: clipped to its width when there is room for a few characters,
    # turned on its side when the groups are too narrow for that (the full text stays in each bar's <title>).
    for i, label in enumerate(labels):
        cx = pad + i * group_w + bar_w * len(series) / 2
        if slanted:
            parts.append(f'<text class="label" x="{cx:.1f}" y="{height - 8}" font-size="10" fill="#5b6472" '
                         f'transform="rotate(60 {cx:.1f} {height - 8})">{escape(_clip(label, 40))}</text>')
        else:
            parts.append(f'<text class="label" x="{cx:.1f}" y="{height - 6}" font-size="11" fill="#5b6472" '
                         f'text-anchor="middle">{escape(_clip(label, group_w))}</text>')
    parts.append("</svg>")
    return "".join(parts)


# --- Dashboard charts: exact values in, accessible SVG out -------------------------------------------------------
#
# The dashboards hand over Decimal figures (money, hours, ratios). Only the geometry is computed in
# floats; every label and `data-value` shows the exact figure, so what a reader (or a test) sees next
# to a bar is the API's number, never a rounded float.

Number = Decimal | int | float
Formatter = Callable[[Decimal], str]
PALETTE = ("#1f5fbf", "#9a6400", "#1d7a46", "#b42318")


def _exact(value: Number) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _plain(value: Decimal) -> str:
    return f"{value:,f}"  # fixed-point: "1.2E+3" from a normalised Decimal reads "1,200"


def _span(values: Sequence[Decimal]) -> tuple[float, float]:
    """The axis range: always includes zero, never empty (an all-zero chart still has a scale)."""
    lo = min([0.0, *(float(v) for v in values)])
    hi = max([0.0, *(float(v) for v in values)])
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _clip(text: str, room: float, char_w: float = 6.5) -> str:
    """Shorten a label to the pixels it has; the full text stays in the bar's <title>."""
    most = max(1, int(room / char_w))
    return text if len(text) <= most else text[: max(1, most - 1)] + "…"


def _frame(chart_id: str, title: str, description: str, width: int, height: int) -> list[str]:
    ident = escape(chart_id)
    return [f'<svg class="chart dashboard" id="{ident}" role="img" aria-labelledby="{ident}-title {ident}-desc" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
            f'<title id="{ident}-title">{escape(title)}</title><desc id="{ident}-desc">{escape(description)}</desc>',
            f'<text x="12" y="20" font-size="13" font-weight="600" aria-hidden="true">{escape(title)}</text>']


def _legend(names: Sequence[str], width: int) -> list[str]:
    if len(names) < 2:
        return []
    return [f'<text class="legend" x="{width - 200}" y="{20 + 14 * s}" font-size="11" '
            f'fill="{PALETTE[s % len(PALETTE)]}" aria-hidden="true">■ {escape(name)}</text>'
            for s, name in enumerate(names)]


def _bar(x: float, y: float, w: float, h: float, s: int, name: str, label: str, value: Decimal,
         fmt: Formatter) -> str:
    return (f'<rect class="bar s{s}" data-series="{escape(name)}" data-label="{escape(label)}" data-value="{value}" '
            f'x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{PALETTE[s % len(PALETTE)]}">'
            f'<title>{escape(label)} · {escape(name)}: {escape(fmt(value))}</title></rect>')


def _empty(parts: list[str], x: float, y: float) -> str:
    parts.append(f'<text class="empty" x="{x:.1f}" y="{y:.1f}" font-size="12" fill="#5b6472">No data</text></svg>')
    return "".join(parts)


def column_chart(labels: Sequence[str], series: Mapping[str, Sequence[Number]], *, title: str, description: str,
                 chart_id: str, fmt: Formatter = _plain, width: int = 720, height: int = 260) -> str:
    """Vertical bars grouped by label, one colour per series (planned vs actual, amount per aging bucket).

    Heights are proportional to the values on an axis that always includes zero; a negative
    value hangs below the zero line. Every label is written under its group (clipped to fit,
    in full in the bar's tooltip), and each bar carries `data-label`/`data-series`/`data-value`.
    """
    names = list(series)
    values = {name: [_exact(v) for v in series[name]] for name in names}
    parts = _frame(chart_id, title, description, width, height) + _legend(names, width)
    left, right, top, bottom = 56, 12, 44, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    if not labels or not names:
        return _empty(parts, left, top + plot_h / 2)
    every = [v for vs in values.values() for v in vs]
    lo, hi = _span(every)
    zero_y = top + plot_h * hi / (hi - lo)
    group_w = plot_w / len(labels)
    bar_w = min(group_w * 0.8 / len(names), 56.0)  # few groups: slim bars, centred, not slabs
    inset = (group_w - bar_w * len(names)) / 2
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{zero_y:.1f}" y2="{zero_y:.1f}" stroke="#5b6472"/>')
    parts.append(f'<text class="axis" x="{left - 4}" y="{zero_y + 4:.1f}" font-size="10" fill="#5b6472" '
                 f'text-anchor="end">0</text>')
    if (most := max(every, default=Decimal(0))) > 0:
        parts.append(f'<text class="axis" x="{left}" y="{top - 6}" font-size="10" fill="#5b6472">'
                     f'max {escape(fmt(most))}</text>')
    for s, name in enumerate(names):
        for i, value in enumerate(values[name][: len(labels)]):
            h = plot_h * abs(float(value)) / (hi - lo)
            x = left + i * group_w + inset + s * bar_w
            y = zero_y - h if value >= 0 else zero_y
            parts.append(_bar(x, y, bar_w, h, s, name, labels[i], value, fmt))
    for i, label in enumerate(labels):
        parts.append(f'<text class="label" x="{left + (i + 0.5) * group_w:.1f}" y="{height - 10}" font-size="11" '
                     f'text-anchor="middle" fill="#1d2430">{escape(_clip(label, group_w))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def horizontal_bar_chart(labels: Sequence[str], series: Mapping[str, Sequence[Number]], *, title: str,
                         description: str, chart_id: str, fmt: Formatter = _plain, width: int = 720,
                         row_height: int = 22) -> str:
    """One row per label with its bars side by side (top projects, counts); grows in height with the rows.

    Lengths are proportional to the values on an axis that always includes zero, so a negative
    margin extends left of the zero line. The exact figure of every bar is written at the end of
    its row, in its series' colour.
    """
    names = list(series)
    values = {name: [_exact(v) for v in series[name]] for name in names}
    left, right, top = 190, 110, 44
    rows = max(1, len(labels))
    band = row_height * max(1, len(names))
    height = top + rows * (band + 6) + 12
    parts = _frame(chart_id, title, description, width, height) + _legend(names, width)
    if not labels or not names:
        return _empty(parts, left, top + 16)
    plot_w = width - left - right
    lo, hi = _span([v for vs in values.values() for v in vs])
    zero_x = left + plot_w * -lo / (hi - lo)
    parts.append(f'<line x1="{zero_x:.1f}" x2="{zero_x:.1f}" y1="{top - 4}" y2="{height - 8}" stroke="#5b6472"/>')
    for i, label in enumerate(labels):
        y0 = top + i * (band + 6)
        parts.append(f'<text class="label" x="{left - 8}" y="{y0 + band / 2 + 4:.1f}" font-size="11" text-anchor="end" '
                     f'fill="#1d2430">{escape(_clip(label, left - 16))}</text>')
        for s, name in enumerate(names):
            if i >= len(values[name]):
                continue
            value = values[name][i]
            w = plot_w * abs(float(value)) / (hi - lo)
            x = zero_x if value >= 0 else zero_x - w
            parts.append(_bar(x, y0 + s * row_height + 2, w, row_height - 4, s, name, label, value, fmt))
            mid = y0 + s * row_height + row_height / 2
            parts.append(f'<text class="value" x="{width - right + 8}" y="{mid + 4:.1f}"'
                         f' font-size="{min(11, row_height - 1)}" fill="{PALETTE[s % len(PALETTE)]}">'
                         f'{escape(fmt(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)
