"""Charts drawn as inline SVG on the server: no chart library to load, nothing from a CDN."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["bar_chart"]


def bar_chart(labels: Sequence[str], series: dict[str, Sequence[float]], *, title: str, width: int = 720,
              height: int = 220) -> str:
    """Grouped bars, one colour per series, with a y-axis maximum and the first and last labels."""
    colours = ["#1f5fbf", "#b42318", "#9a6400", "#1d7a46"]
    top = max([v for values in series.values() for v in values] + [1.0])
    pad, plot_h = 30, height - 60
    groups = max(1, len(labels))
    group_w = (width - 2 * pad) / groups
    bar_w = max(1.0, group_w / (len(series) + 1))
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
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
    if labels:
        parts.append(f'<text x="{pad}" y="{height - 6}" font-size="11" fill="#5b6472">{escape(labels[0])}</text>')
        parts.append(f'<text x="{width - pad}" y="{height - 6}" font-size="11" fill="#5b6472" '
                     f'text-anchor="end">{escape(labels[-1])}</text>')
    parts.append("</svg>")
    return "".join(parts)
