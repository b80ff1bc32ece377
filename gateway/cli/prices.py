"""``fal-gateway prices ...``: the price table, each endpoint's price now and scheduled."""

from __future__ import annotations

from typing import Any

import click

from gateway.cli.admin import admin_call, admin_group
from gateway.cli.flags import PRICE_TERMS, given
from gateway.cli.output import json_option, one_row, show, table

COLUMNS = (
    "endpoint",
    "version",
    "per_megapixel_micros",
    "per_image_micros",
    "per_request_micros",
    "effective_at",
    "state",
)

group = admin_group(
    "prices", "The price table: each endpoint's price, now and scheduled (through the admin API)."
)


def listing_rows(listing: dict[str, Any], superseded: bool) -> list[dict[str, Any]]:
    """One row per price: each endpoint's current one (its catalog price when the table has
    none), then those scheduled, then (``superseded``) those it replaced."""
    rows = []
    for shown in listing["endpoints"]:
        current = {"state": "catalog", **shown["current"]}
        rows.append({"endpoint": shown["endpoint"], **current})
        rows += shown["scheduled"] + (shown["superseded"] if superseded else [])
    return rows


@group.command("list")
@click.option("--all", "superseded", is_flag=True, help="Also the prices superseded.")
@json_option
@click.pass_context
def list_prices(ctx: click.Context, superseded: bool, as_json: bool) -> None:
    """Each endpoint's current price and those scheduled."""
    listing = admin_call(ctx, "GET", "/prices")
    show(listing, as_json, lambda data: table(listing_rows(data, superseded), COLUMNS))


@group.command("set")
@click.argument("endpoint")
@PRICE_TERMS.options
@click.option("--at", "effective_at", help="When it takes effect (RFC 3339) [now].")
@click.option("--note", default="", help="Why (kept with the price).")
@json_option
@click.pass_context
def set_price(
    ctx: click.Context,
    /,
    endpoint: str,
    effective_at: str | None,
    note: str,
    as_json: bool,
    **flags: object,
) -> None:
    """Set ENDPOINT's price, from the next submit on every replica or from --at."""
    body = {"endpoint": endpoint, "note": note} | given(effective_at=effective_at)
    entry = admin_call(ctx, "POST", "/prices", body | PRICE_TERMS.pop(flags))
    show(entry, as_json, one_row(COLUMNS))


@group.command("show")
@click.argument("version", type=int)
@json_option
@click.pass_context
def show_price(ctx: click.Context, version: int, as_json: bool) -> None:
    """The price of a version (as a usage record names it)."""
    show(admin_call(ctx, "GET", f"/prices/{version}"), as_json, one_row(COLUMNS))


@group.command("cancel")
@click.argument("version", type=int)
@json_option
@click.pass_context
def cancel_price(ctx: click.Context, version: int, as_json: bool) -> None:
    """Cancel a scheduled price before it takes effect."""
    show(admin_call(ctx, "DELETE", f"/prices/{version}"), as_json, one_row(COLUMNS))
