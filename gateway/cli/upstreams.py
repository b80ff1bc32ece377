"""``fal-gateway upstreams ...``: the pool of fal accounts the gateway sends jobs to."""

from __future__ import annotations

import sys
from typing import Any

import click

from gateway.cli.admin import admin_call, admin_group
from gateway.cli.flags import given
from gateway.cli.output import json_option, rows_of, show, table

COLUMNS = (
    "name",
    "state",
    "reason",
    "weight",
    "max_concurrent",
    "hard_limit",
    "in_flight",
    "key_fingerprint",
)

group = admin_group(
    "upstreams", "Manage the pool of fal accounts jobs go to (through the admin API)."
)


def _one(account: dict[str, Any]) -> str:
    return table([account], COLUMNS)


def _read_key(from_stdin: bool) -> str:
    """The fal key, never from the command line (it would show in ``ps`` and shell history)."""
    if from_stdin:
        return sys.stdin.readline().strip()
    key: str = click.prompt("fal key", hide_input=True)
    return key.strip()


def _limits(func: Any) -> Any:
    for option in reversed(
        (
            click.option("--weight", type=int, help="Share of new jobs (0: takes none) [1]."),
            click.option(
                "--max-concurrent", type=int, help="Jobs in flight before it is full (0: no limit)."
            ),
            click.option(
                "--hard-limit/--soft-limit",
                default=None,
                help="At its limit refuse jobs with 429, or let fal queue them [soft].",
            ),
        )
    ):
        func = option(func)
    return func


@group.command("list")
@json_option
@click.pass_context
def list_accounts(ctx: click.Context, as_json: bool) -> None:
    """Every account with its state, reason and jobs in flight."""
    show(admin_call(ctx, "GET", "/upstreams"), as_json, rows_of("upstreams", COLUMNS))


@group.command("show")
@click.argument("name")
@json_option
@click.pass_context
def show_account(ctx: click.Context, name: str, as_json: bool) -> None:
    """One account."""
    show(admin_call(ctx, "GET", f"/upstreams/{name}"), as_json, _one)


@group.command("add")
@click.argument("name")
@click.option("--key-stdin", is_flag=True, help="Read the fal key from standard input.")
@_limits
@json_option
@click.pass_context
def add(
    ctx: click.Context,
    name: str,
    key_stdin: bool,
    weight: int | None,
    max_concurrent: int | None,
    hard_limit: bool | None,
    as_json: bool,
) -> None:
    """Add a fal account (its key is asked for, hidden, or read with --key-stdin)."""
    body = {"name": name, "key": _read_key(key_stdin)} | given(
        weight=weight, max_concurrent=max_concurrent, hard_limit=hard_limit
    )
    show(admin_call(ctx, "POST", "/upstreams", body), as_json, _one)


@group.command("set")
@click.argument("name")
@click.option("--key", "new_key", is_flag=True, help="Give the account a new fal key (asked).")
@click.option("--key-stdin", is_flag=True, help="Read the new fal key from standard input.")
@_limits
@json_option
@click.pass_context
def set_account(
    ctx: click.Context,
    name: str,
    new_key: bool,
    key_stdin: bool,
    weight: int | None,
    max_concurrent: int | None,
    hard_limit: bool | None,
    as_json: bool,
) -> None:
    """Change an account's weight, limit or key."""
    body = given(weight=weight, max_concurrent=max_concurrent, hard_limit=hard_limit)
    if new_key or key_stdin:
        body["key"] = _read_key(key_stdin)
    if not body:
        raise click.UsageError("nothing to change: give --weight, --max-concurrent, ... or --key")
    show(admin_call(ctx, "PATCH", f"/upstreams/{name}", body), as_json, _one)


def _switch(name: str, enabled: bool, summary: str) -> None:
    @group.command(name, help=summary)
    @click.argument("account")
    @json_option
    @click.pass_context
    def switch(ctx: click.Context, account: str, as_json: bool) -> None:
        body = {"enabled": enabled}
        show(admin_call(ctx, "PATCH", f"/upstreams/{account}", body), as_json, _one)


_switch("disable", False, "Send no new job to an account (jobs on it are still served).")
_switch("enable", True, "Let an account take jobs again (also clears a refusal by fal).")


@group.command("remove")
@click.argument("name")
@json_option
@click.pass_context
def remove(ctx: click.Context, name: str, as_json: bool) -> None:
    """Delete an account with no job in flight (drain it first with --weight 0)."""
    show(admin_call(ctx, "DELETE", f"/upstreams/{name}"), as_json, lambda _: f"removed {name}")
