"""What the commands that call the admin API share: the connection flags and the call."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from gateway.cli.admin_client import AdminClient, AdminError
from gateway.settings import Settings


def connect(ctx: click.Context, url: str | None, token: str | None) -> None:
    """Keep where the admin API is (``--url``, else the gateway's public URL) for ``admin_call``."""
    ctx.obj = (url or Settings().public_url, token)


def admin_call(ctx: click.Context, method: str, path: str, body: Any = None) -> Any:
    """Call the admin API (``path`` under ``/admin/v1``); its refusals become CLI errors."""
    url, token = ctx.obj
    try:
        with AdminClient(url, token) as admin:
            return admin.call(method, path, body)
    except AdminError as exc:
        raise click.ClickException(str(exc)) from exc


def admin_download(
    ctx: click.Context, path: str, params: Mapping[str, str | None], output: Path | None
) -> None:
    """Stream the admin API's answer at ``path`` to ``output`` (stdout when None)."""
    url, token = ctx.obj
    given = {name: value for name, value in params.items() if value is not None}
    try:
        with AdminClient(url, token) as admin:
            if output is None:
                admin.download(path, given, sys.stdout.buffer)
                return
            with output.open("wb") as out:
                admin.download(path, given, out)
    except AdminError as exc:
        raise click.ClickException(str(exc)) from exc


def export_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--from``, ``--to``, ``--format`` and ``--output`` of the export commands."""
    options = [
        click.option("--from", "start", help="First day (YYYY-MM-DD, UTC) or RFC 3339 time."),
        click.option("--to", "end", help="Last day (all of it) or RFC 3339 time [now]."),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["csv", "jsonl"]),
            default="csv",
            show_default=True,
        ),
        click.option(
            "--output",
            "-o",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write to this file [stdout].",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def connection(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--url`` and ``--token`` for commands that call the admin API."""
    command = click.option(
        "--token", envvar="GATEWAY_ADMIN_TOKEN", help="Admin token [GATEWAY_ADMIN_TOKEN]."
    )(command)
    return click.option(
        "--url", envvar="GATEWAY_ADMIN_URL", help="Gateway URL [GATEWAY_PUBLIC_URL]."
    )(command)


def admin_group(name: str, help_text: str) -> click.Group:
    """A command group whose commands talk to the admin API."""

    @click.group(name=name, help=help_text)
    @connection
    @click.pass_context
    def group(ctx: click.Context, url: str | None, token: str | None) -> None:
        connect(ctx, url, token)

    return group
