"""How the pages write amounts, times and durations (Jinja globals of every template)."""

from __future__ import annotations

from datetime import UTC, datetime


def money(micros: int) -> str:
    """Micro-units as currency units: two decimals, up to six under a cent (what one image
    costs)."""
    if 0 < abs(micros) < 10_000:
        return f"{micros / 1_000_000:.6f}".rstrip("0")
    return f"{micros / 1_000_000:,.2f}"


def unit_price(micros: int) -> str:
    """A price term in currency units, as precise as it is set (``0.035`` per megapixel)."""
    return f"{micros / 1_000_000:.6f}".rstrip("0").rstrip(".")


def when(timestamp: float | None) -> str:
    """A time (s since the epoch) in UTC, to the second; empty for none."""
    if not timestamp:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    """A duration as people read it: ``0.84 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``;
    empty for none."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
