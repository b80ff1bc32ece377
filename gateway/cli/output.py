"""How admin commands print what the admin API returns: a table, or JSON with ``--json``."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as aligned text columns under an upper-case header ("-" for empty cells)."""
    cells = [["-" if row.get(c) in (None, "") else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def show(data: Any, as_json: bool, render: Callable[[Any], str]) -> None:
    """Print ``data`` as JSON, or as ``render`` makes it readable."""
    click.echo(json.dumps(data, indent=2) if as_json else render(data))


def rows_of(name: str, columns: Sequence[str]) -> Callable[[dict[str, Any]], str]:
    """A renderer for a response that lists its rows under ``name``."""
    return lambda data: table(data[name], columns)


def one_row(columns: Sequence[str]) -> Callable[[dict[str, Any]], str]:
    """A renderer for a response that is one row."""
    return lambda data: table([data], columns)
