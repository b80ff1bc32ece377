"""``fal-gateway teams ...``: teams, their credit and ledger, limits, policy and own prices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from gateway.cli.admin import admin_call, admin_download, admin_group, export_options
from gateway.cli.flags import PRICE_TERMS, TEAM_LIMITS, given
from gateway.cli.output import json_option, rows_of, show, table
from gateway.cli.records import Records

COLUMNS = (
    "id",
    "name",
    "balance_micros",
    "reserved_micros",
    "available_micros",
    "price_multiplier",
)
LEDGER_COLUMNS = ("at", "kind", "amount_micros", "balance_micros", "request_id", "note")
PRICE_COLUMNS = (
    "endpoint",
    "source",
    "version",
    "per_megapixel_micros",
    "per_image_micros",
    "per_request_micros",
)

group = admin_group(
    "teams", "Manage teams: credit, ledger, limits and policy (through the admin API)."
)


def team_text(team: dict[str, Any]) -> str:
    limits, policy = json.dumps(team["limits"]), json.dumps(team["policy"])
    return f"{table([team], COLUMNS)}\n\nlimits: {limits}\npolicy: {policy}"


@group.command("create")
@click.option("--name", required=True)
@click.option("--id", "team_id", help="Team id (lowercase, digits, '-'); generated if not given.")
@TEAM_LIMITS.options
@json_option
@click.pass_context
def create(
    ctx: click.Context, /, name: str, team_id: str | None, as_json: bool, **flags: object
) -> None:
    """Create a team (balance 0; add credit with `teams credit`)."""
    body = given(id=team_id, name=name) | TEAM_LIMITS.pop(flags)
    show(admin_call(ctx, "POST", "/teams", body), as_json, team_text)


@group.command("credit")
@click.argument("team_id")
@click.argument("amount_micros", type=int)
@click.option("--note", default="", help="Why (kept in the ledger).")
@json_option
@click.pass_context
def credit(ctx: click.Context, team_id: str, amount_micros: int, note: str, as_json: bool) -> None:
    """Add credit to a team (negative to take it away); every change is in the ledger."""
    body = {"amount_micros": amount_micros, "note": note}
    show(
        admin_call(ctx, "POST", f"/teams/{team_id}/credits", body),
        as_json,
        lambda d: f"balance_micros: {d['balance_micros']}",
    )


@group.command("ledger")
@click.argument("team_id")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@click.pass_context
def ledger(ctx: click.Context, team_id: str, limit: int, as_json: bool) -> None:
    """The team's balance changes, newest first."""
    data = admin_call(ctx, "GET", f"/teams/{team_id}/ledger?limit={limit}")
    show(data, as_json, rows_of("entries", LEDGER_COLUMNS))


@group.command("prices")
@click.argument("team_id")
@json_option
@click.pass_context
def prices(ctx: click.Context, team_id: str, as_json: bool) -> None:
    """What the team pays per endpoint before its multiplier: its own price or the table's."""
    show(
        admin_call(ctx, "GET", f"/teams/{team_id}/prices"),
        as_json,
        rows_of("prices", PRICE_COLUMNS),
    )


@group.command("price")
@click.argument("team_id")
@click.argument("endpoint")
@PRICE_TERMS.options
@click.option("--clear", is_flag=True, help="Back to the table's price.")
@json_option
@click.pass_context
def price(
    ctx: click.Context, /, team_id: str, endpoint: str, clear: bool, as_json: bool, **flags: object
) -> None:
    """Give a team its own price of ENDPOINT (its multiplier still applies), or --clear it."""
    terms = PRICE_TERMS.pop(flags)
    if clear and terms:
        raise click.UsageError("--clear takes no price")
    path = f"/teams/{team_id}/prices/{endpoint}"
    answer = admin_call(ctx, "DELETE", path) if clear else admin_call(ctx, "PUT", path, terms)
    show(answer, as_json, rows_of("prices", PRICE_COLUMNS))


@group.command("alert-webhook")
@click.argument("team_id")
@click.argument("url", required=False)
@click.option("--remove", is_flag=True, help="Send the team's alerts to the operator only.")
@json_option
@click.pass_context
def alert_webhook(
    ctx: click.Context, team_id: str, url: str | None, remove: bool, as_json: bool
) -> None:
    """Send the team's low-balance alerts to URL too, signed with a new secret (shown only
    now; setting it again makes a new one)."""
    if bool(url) == remove:
        raise click.UsageError("give a URL, or --remove")
    path = f"/teams/{team_id}/alert-webhook"
    if remove:
        show(admin_call(ctx, "DELETE", path), as_json, team_text)
        return
    data = admin_call(ctx, "PUT", path, {"url": url})
    show(data, as_json, lambda d: f"url: {d['url']}\nsecret: {d['secret']}")


@group.command("export-ledger")
@click.argument("team_id")
@export_options
@click.pass_context
def export_ledger(
    ctx: click.Context,
    team_id: str,
    start: str | None,
    end: str | None,
    fmt: str,
    output: Path | None,
) -> None:
    """Export the team's ledger entries in a time range, oldest first (CSV or JSON lines);
    entries older than the gateway's ledger retention are gone."""
    params = {"from": start, "to": end, "format": fmt}
    admin_download(ctx, f"/teams/{team_id}/ledger/export", params, output)


records = Records(group, "team", team_text, TEAM_LIMITS)
records.add_list(COLUMNS, "List teams with their balances.")
records.add_call("show", "Show a team: balance, limits, policy.")
records.add_policy(
    "Replace a team's policy with the one the flags describe (applies to all its keys)."
)
records.add_limits("Change a team's multiplier and limits (0 removes a cap or rate limit).")
