"""``fal-gateway deliveries ...``: the webhook deliveries to callers, and replaying them."""

from __future__ import annotations

from urllib.parse import urlencode

import click

from gateway.cli.admin import admin_call, admin_group
from gateway.cli.flags import given
from gateway.cli.output import json_option, one_row, rows_of, show

COLUMNS = ("id", "status", "attempts", "last_error", "created_at", "url")

group = admin_group("deliveries", "Webhook deliveries to callers (through the admin API).")


@group.command("list")
@click.option("--key", "key_id", required=True, help="The key whose deliveries to list.")
@click.option("--status", type=click.Choice(["pending", "delivered", "dead"]))
@json_option
@click.pass_context
def list_deliveries(ctx: click.Context, key_id: str, status: str | None, as_json: bool) -> None:
    """A key's webhook deliveries, newest first, with attempts and last error."""
    query = urlencode(given(key_id=key_id, status=status))
    show(admin_call(ctx, "GET", f"/deliveries?{query}"), as_json, rows_of("deliveries", COLUMNS))


@group.command("replay")
@click.argument("delivery_id", required=False)
@click.option("--dead-of-key", "key_id", help="Replay every dead-lettered delivery of this key.")
@json_option
@click.pass_context
def replay(ctx: click.Context, delivery_id: str | None, key_id: str | None, as_json: bool) -> None:
    """Queue a delivery again (attempts reset), or all of a key's dead-lettered ones."""
    if (delivery_id is None) == (key_id is None):
        raise click.UsageError("give a DELIVERY_ID or --dead-of-key KEY_ID")
    if delivery_id is not None:
        data = admin_call(ctx, "POST", f"/deliveries/{delivery_id}/replay")
        show(data, as_json, one_row(COLUMNS))
    else:
        data = admin_call(ctx, "POST", f"/deliveries/replay?{urlencode({'key_id': key_id})}")
        show(data, as_json, rows_of("deliveries", COLUMNS))
