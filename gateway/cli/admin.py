"""What the commands that call the admin API share: the connection flags and the call."""

from __future__ import annotations

from collections.abc import Callable
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
