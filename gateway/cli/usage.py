"""``fal-gateway usage``: requests, images, megapixels and cost, as a table, CSV or JSON; and
``fal-gateway usage export``: every settled request in a time range, streamed."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import click

from gateway.cli.admin import admin_call, admin_download, connect, connection, export_options
from gateway.cli.flags import given
from gateway.cli.output import json_option, table
from gateway.limits.usage import COLUMNS


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


@click.group(invoke_without_command=True)
@connection
@click.option("--team", "team_id", help="Only this team.")
@click.option("--key", "key_id", help="Only this key.")
@click.option("--endpoint", help="Only this endpoint.")
@click.option("--from", "start", help="First day, YYYY-MM-DD (UTC) [today].")
@click.option("--to", "end", help="Last day, YYYY-MM-DD (UTC) [today].")
@click.option(
    "--group-by",
    default="day,team_id,key_id,endpoint",
    show_default=True,
    help="Comma-separated: day, team_id, key_id, endpoint.",
)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@json_option
@click.pass_context
def usage(
    ctx: click.Context,
    url: str | None,
    token: str | None,
    team_id: str | None,
    key_id: str | None,
    endpoint: str | None,
    start: str | None,
    end: str | None,
    group_by: str,
    as_csv: bool,
    as_json: bool,
) -> None:
    """Usage (requests, failed, images, megapixels, cost) from the admin API; `usage export` lists
    every settled request instead."""
    connect(ctx, url, token)
    if ctx.invoked_subcommand is not None:
        return
    query = given(team_id=team_id, key_id=key_id, endpoint=endpoint, to=end, group_by=group_by)
    if start:
        query["from"] = start
    rows = admin_call(ctx, "GET", "/usage?" + urlencode(query))["usage"]
    columns = [*(g for g in group_by.split(",") if g), *COLUMNS]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif as_csv:
        click.echo(_csv(rows, columns), nl=False)
    else:
        click.echo(table(rows, columns))


@usage.command("export")
@click.option("--team", "team_id", help="Only this team [every team].")
@export_options
@click.pass_context
def export(
    ctx: click.Context,
    team_id: str | None,
    start: str | None,
    end: str | None,
    fmt: str,
    output: Path | None,
) -> None:
    """Export every settled request in a time range (request, key, endpoint, images, pixels,
    cost), team by team, oldest first, as CSV or JSON lines; requests older than the gateway's
    usage retention are gone. Connection flags go before `export`."""
    params = {"team_id": team_id, "from": start, "to": end, "format": fmt}
    admin_download(ctx, "/usage/export", params, output)
