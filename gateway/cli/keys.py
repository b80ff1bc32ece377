"""``fal-gateway keys ...``: the API keys callers use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click

from gateway.cli.admin import admin_call, admin_group
from gateway.cli.flags import KEY_LIMITS, POLICY, given
from gateway.cli.output import json_option, one_row, show
from gateway.cli.records import Records

COLUMNS = ("id", "name", "team_id", "status", "created_at", "expires_at")
key_row = one_row(COLUMNS)

group = admin_group("keys", "Manage the API keys callers use (through the admin API).")


@group.command("create")
@click.option("--name", required=True, help="What the key is for.")
@click.option("--team", "team_id", help="Team that owns the key [default].")
@click.option("--expires-at", help="Expiry time, RFC 3339.")
@click.option("--expires-in", type=int, help="Expiry in days from now.")
@KEY_LIMITS.options
@POLICY.options
@json_option
@click.pass_context
def create(
    ctx: click.Context,
    /,
    name: str,
    team_id: str | None,
    expires_at: str | None,
    expires_in: int | None,
    as_json: bool,
    **flags: object,
) -> None:
    """Create a key; its secret is shown this once."""
    if expires_in is not None:
        if expires_at is not None:
            raise click.UsageError("give --expires-at or --expires-in, not both")
        expires_at = (datetime.now(UTC) + timedelta(days=expires_in)).isoformat()
    limits, policy = KEY_LIMITS.pop(flags), POLICY.pop(flags) or None
    body = given(name=name, team_id=team_id, expires_at=expires_at, policy=policy) | limits
    show(
        admin_call(ctx, "POST", "/keys", body),
        as_json,
        lambda k: f"{key_row(k)}\n\nSecret (shown only now): {k['secret']}",
    )


def _rotated(secret: dict[str, Any]) -> str:
    return (
        f"webhook_secret: {secret['webhook_secret']}\n"
        f"the previous secret signs too until {secret['previous_valid_until']}"
    )


records = Records(group, "key", key_row, KEY_LIMITS)
records.add_list(COLUMNS, "List keys (never their secrets).")
records.add_call("show", "Show one key.")
records.add_policy("Replace a key's policy with the one the flags describe.")
records.add_limits("Change a key's limits (0 removes one).")
records.add_call(
    "revoke", "Revoke a key: it stops working at once.", method="POST", action="/revoke"
)
records.add_call(
    "rotate-webhook-secret",
    "A new webhook signing secret (shown once); the old one signs too during the grace period.",
    method="POST",
    action="/webhook-secret",
    render=_rotated,
)
