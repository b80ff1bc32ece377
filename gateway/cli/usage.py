"""``fal-gateway usage``: requests, images, megapixels and cost, as a table, CSV or JSON;
``usage export``: every settled request in a time range, streamed; ``usage records``: the same
a page at a time, from a cursor; ``usage reconcile``: the charges against fal's bill."""

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
from gateway.limits.exports import USAGE_COLUMNS
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


@usage.command("records")
@click.option("--team", "team_id", help="Only this team [every team].")
@click.option("--from", "start", help="First day (YYYY-MM-DD, UTC) or RFC 3339 time.")
@click.option("--to", "end", help="Last day (all of it) or RFC 3339 time [now].")
@click.option("--after", help="Start after this cursor (the `next` a page ended with).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--all", "every", is_flag=True, help="Follow the cursor to the last page.")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True
)
@click.pass_context
def records(
    ctx: click.Context,
    team_id: str | None,
    start: str | None,
    end: str | None,
    after: str | None,
    limit: int,
    every: bool,
    fmt: str,
) -> None:
    """Settled requests a page at a time (price version, billable units, megapixels, cost), as
    CSV or JSON lines; the cursor to go on from is printed to stderr (`next: ...`) unless the
    page was the last. Connection flags go before `records`."""
    query = given(team_id=team_id, to=end, limit=str(limit))
    if start:
        query["from"] = start
    first = True
    while True:
        page = admin_call(ctx, "GET", "/usage/records?" + urlencode(given(**query, after=after)))
        if fmt == "jsonl":
            click.echo("".join(json.dumps(row) + "\n" for row in page["records"]), nl=False)
        else:
            text = _csv(page["records"], list(USAGE_COLUMNS))
            click.echo(text if first else text.partition("\n")[2], nl=False)
        first, after = False, page["next"]
        if after is None or not every:
            break
    if after is not None:
        click.echo(f"next: {after}", err=True)


RECONCILED = [
    "day",
    "endpoint",
    "jobs",
    "jobs_without_units",
    "flagged_jobs",
    "billable_units",
    "expected_units",
    "list_cost_micros",
    "fal_cost_micros",
    "charged_micros",
    "price_ratio",
    "units_ratio",
    "flags",
]
FLAGGED = ["request_id", "team_id", "endpoint", "outcome", "billable_units", "expected_units"]


@usage.command("reconcile")
@click.option("--from", "start", help="First day (YYYY-MM-DD, UTC) or RFC 3339 time.")
@click.option("--to", "end", help="Last day (all of it) or RFC 3339 time [now].")
@click.option("--tolerance", help="How far a ratio may be from 1 unflagged [0.05].")
@click.option("--limit", type=click.IntRange(0, 1000), help="Most flagged jobs listed [100].")
@json_option
@click.pass_context
def reconcile(
    ctx: click.Context,
    start: str | None,
    end: str | None,
    tolerance: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """The gateway's charges against fal's billable units, by day and endpoint, with the jobs
    whose list price or units disagree with fal's bill. Connection flags go before
    `reconcile`."""
    query = given(to=end, tolerance=tolerance, limit=None if limit is None else str(limit))
    if start:
        query["from"] = start
    report = admin_call(ctx, "GET", "/reconciliation?" + urlencode(query))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    rows = [{**row, "flags": ",".join(row["flags"])} for row in report["rows"]]
    click.echo(table(rows, RECONCILED))
    jobs = [{**job, "flags": ",".join(job["flags"])} for job in report["flagged_jobs"]]
    if jobs:
        click.echo(f"\nflagged jobs (tolerance {report['tolerance']}):")
        click.echo(table(jobs, [*FLAGGED, "flags"]))
