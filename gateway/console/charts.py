"""Charts drawn on the server as SVG (presentation attributes only: no script and no inline
style, so the pages' Content-Security-Policy holds)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 640, 180, 24
BLUE, RED = "#2b59c3", "#b42318"


def bar_chart(points: Sequence[tuple[str, float]], title: str, color: str = BLUE) -> Markup:
    """Bars for ``(label, value)`` points, labelled under every few bars, with a title for
    screen readers."""
    top = max((value for _, value in points), default=0) or 1
    step = (WIDTH - 2 * PAD) / max(len(points), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT + PAD}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    every = max(1, len(points) // 7)
    for index, (label, value) in enumerate(points):
        height = (HEIGHT - PAD) * value / top
        x = PAD + index * step
        parts.append(
            f'<rect x="{x + step * 0.1:.1f}" y="{HEIGHT - height:.1f}" width="{step * 0.8:.1f}" '
            f'height="{height:.1f}" fill="{color}"><title>{escape(label)}: {value:g}</title></rect>'
        )
        if index % every == 0:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{HEIGHT + 16}" font-size="11" '
                f'text-anchor="middle" fill="#5b6570">{escape(label[5:])}</text>'
            )
    parts.append(f'<text x="{PAD}" y="12" font-size="11" fill="#5b6570">max {top:g}</text></svg>')
    return Markup("".join(parts))  # noqa: S704 (every text in it went through escape)


def daily_series(
    rows: Iterable[Mapping[str, Any]], span: Iterable[str], metric: str, scale: float = 1
) -> list[tuple[str, float]]:
    """One metric of usage rows grouped by day (``limits.usage``), divided by ``scale``, for each
    day of ``span``: 0 on days without a row."""
    by_day = {row["day"]: row[metric] for row in rows}
    return [(day, by_day.get(day, 0) / scale) for day in span]
