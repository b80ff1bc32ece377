"""Commands about keys or teams, made for either: list them, one call about one of them (show,
revoke, ...), replace its policy, change its limits."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from gateway.cli.admin import admin_call
from gateway.cli.flags import POLICY, FlagSet
from gateway.cli.output import json_option, rows_of, show


@dataclass(frozen=True)
class Records:
    """Keys (or teams) as the admin API serves them, under ``/keys`` (``/teams``), and the
    command group for them."""

    group: click.Group
    kind: str
    """``key`` or ``team``."""
    render: Callable[[Any], str]
    """One record as text."""
    limits: FlagSet

    def _id(self, command: Callable[..., Any]) -> Callable[..., Any]:
        """The ``KEY_ID`` (or ``TEAM_ID``) argument, passed as ``record_id``."""
        return click.argument("record_id", metavar=f"{self.kind.upper()}_ID")(command)

    def add_list(self, columns: Sequence[str], help_text: str) -> None:
        """``list``: every record, a row each."""
        plural = f"{self.kind}s"

        @self.group.command("list", help=help_text)
        @json_option
        @click.pass_context
        def listing(ctx: click.Context, as_json: bool) -> None:
            show(admin_call(ctx, "GET", f"/{plural}"), as_json, rows_of(plural, columns))

    def add_call(
        self,
        name: str,
        help_text: str,
        *,
        method: str = "GET",
        action: str = "",
        render: Callable[[Any], str] | None = None,
    ) -> None:
        """``<name> ID``: ``method`` on the record's path plus ``action``; the answer shown as
        ``render`` (else as a record) makes it readable."""

        @self.group.command(name, help=help_text)
        @self._id
        @json_option
        @click.pass_context
        def call(ctx: click.Context, record_id: str, as_json: bool) -> None:
            data = admin_call(ctx, method, f"/{self.kind}s/{record_id}{action}")
            show(data, as_json, render or self.render)

    def add_policy(self, help_text: str) -> None:
        """``policy ID [flags]``: replace the record's policy with the one the flags describe."""

        @self.group.command("policy", help=help_text)
        @self._id
        @POLICY.options
        @click.option("--clear", is_flag=True, help="Remove every limit.")
        @json_option
        @click.pass_context
        def policy(
            ctx: click.Context, /, record_id: str, clear: bool, as_json: bool, **flags: Any
        ) -> None:
            rules = POLICY.pop(flags)
            if bool(rules) == clear:
                raise click.UsageError("give policy options, or --clear to remove every limit")
            data = admin_call(ctx, "PUT", f"/{self.kind}s/{record_id}/policy", rules)
            show(data, as_json, lambda item: json.dumps(item.get("policy") or {}, indent=2))

    def add_limits(self, help_text: str) -> None:
        """``limits ID [flags]``: change some of the record's limits."""

        @self.group.command("limits", help=help_text)
        @self._id
        @self.limits.options
        @json_option
        @click.pass_context
        def change(ctx: click.Context, /, record_id: str, as_json: bool, **flags: Any) -> None:
            changes = self.limits.pop(flags)
            if not changes:
                raise click.UsageError("give at least one limit option")
            data = admin_call(ctx, "PATCH", f"/{self.kind}s/{record_id}", changes)
            show(data, as_json, self.render)
