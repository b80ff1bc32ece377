"""``fal-gateway maintenance ...``: upkeep of the gateway's store."""

from __future__ import annotations

from typing import Any

import click

from gateway.cli.admin import admin_call, admin_group
from gateway.cli.flags import given
from gateway.cli.output import json_option, show, table

group = admin_group("maintenance", "Upkeep of the gateway's store (through the admin API).")


def _repaired(data: dict[str, Any]) -> str:
    rows = [
        {
            "index": name,
            "dropped": " ".join(found["dropped"]),
            "restored": " ".join(found["restored"]),
        }
        for name, found in data.items()
    ]
    return table(rows, ("index", "dropped", "restored"))


@group.command("repair-indexes")
@click.option(
    "--grace",
    type=int,
    help="Seconds an entry without a record may be a creation in progress, kept [600].",
)
@json_option
@click.pass_context
def repair_indexes(ctx: click.Context, grace: int | None, as_json: bool) -> None:
    """Drop team and key index entries without a record; re-add the missing entries of
    records (after a crash, a failover or a reshard)."""
    body = given(grace_seconds=grace)
    show(admin_call(ctx, "POST", "/maintenance/repair-indexes", body), as_json, _repaired)
