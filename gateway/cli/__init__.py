"""``fal-gateway`` (also ``python -m gateway``): the product's command line."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import signal
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import click
import uvicorn

from gateway.cli.admin_client import AdminClient, AdminError
from gateway.settings import EmulatorSettings, Settings
from gateway.telemetry.metrics import MULTIPROC_ENV


def _overrides(**flags: Any) -> dict[str, Any]:
    """Flags the user actually gave; they win over settings from the environment."""
    return {name: value for name, value in flags.items() if value is not None}


def run_server(
    app: Any, host: str, port: int, *, tls_cert: Path | None = None, tls_key: Path | None = None
) -> None:
    """Serve an ASGI app with uvicorn (uvloop + httptools), optionally over TLS, until a
    signal stops it."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        log_level="info",
        access_log=False,
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal. Turning it into
    # KeyboardInterrupt lets callers' cleanup run (``dev`` stops Redis and the emulator) and the
    # command exit 0.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@click.group()
def main() -> None:
    """fal gateway: resell or share fal.ai's FLUX editing endpoints behind your own keys."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every URL it fetches at INFO; input URLs can carry signed tokens.
    logging.getLogger("httpx").setLevel(logging.WARNING)


@main.command()
@click.option("--host", help="Address to listen on [GATEWAY_EMULATOR_HOST, 127.0.0.1].")
@click.option("--port", type=int, help="Port to listen on [GATEWAY_EMULATOR_PORT, 8765].")
@click.option("--tls-cert", type=click.Path(exists=True, path_type=Path), help="PEM certificate.")
@click.option("--tls-key", type=click.Path(exists=True, path_type=Path), help="PEM private key.")
def emulator(
    host: str | None, port: int | None, tls_cert: Path | None, tls_key: Path | None
) -> None:
    """Run the fal emulator: fal's queue, sync and storage APIs, locally and for free."""
    from gateway.emulator import create_emulator_app

    settings = EmulatorSettings(
        **_overrides(host=host, port=port, tls_cert=tls_cert, tls_key=tls_key)
    )
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    run_server(
        create_emulator_app(settings),
        settings.host,
        settings.port,
        tls_cert=settings.tls_cert,
        tls_key=settings.tls_key,
    )


def _gateway_settings(**flags: Any) -> Settings:
    settings = Settings(**_overrides(**flags))
    try:
        settings.link_signing_key()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    return settings


@main.command()
@click.option("--host", help="Address to listen on [GATEWAY_HOST, 127.0.0.1].")
@click.option("--port", type=int, help="Port to listen on [GATEWAY_PORT, 8000].")
@click.option("--workers", type=int, help="Worker processes [GATEWAY_WORKERS, 1].")
@click.option("--tls-cert", type=click.Path(exists=True, path_type=Path), help="PEM certificate.")
@click.option("--tls-key", type=click.Path(exists=True, path_type=Path), help="PEM private key.")
def serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Run the gateway in production (settings from GATEWAY_* variables and .env)."""
    from gateway.app import create_app

    settings = _gateway_settings(
        host=host, port=port, workers=workers, tls_cert=tls_cert, tls_key=tls_key
    )
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if not settings.fal_key:
        raise click.UsageError("set GATEWAY_FAL_KEY to the fal key(s) the gateway calls fal with")
    if settings.workers == 1:
        run_server(
            create_app(settings),
            settings.host,
            settings.port,
            tls_cert=settings.tls_cert,
            tls_key=settings.tls_key,
        )
        return
    # Workers build their own settings from the environment; metrics are pooled in files.
    os.environ.setdefault(MULTIPROC_ENV, tempfile.mkdtemp(prefix="fal-gateway-metrics-"))
    uvicorn.run(
        "gateway.app:create_app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
    )


@main.command()
@click.option("--port", type=int, help="Gateway port [GATEWAY_PORT, 8000].")
@click.option("--emulator-port", type=int, default=8765, show_default=True)
@click.option("--redis-port", type=int, default=6390, show_default=True)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
    help="Where Redis data and the dev secrets are kept.",
)
def dev(port: int | None, emulator_port: int, redis_port: int, data_dir: Path) -> None:
    """Run everything locally: embedded Redis, the fal emulator (unless GATEWAY_FAL_KEY is set),
    the gateway, and a demo key."""
    from gateway.app import create_app
    from gateway.cli.devstack import DevStack, prepare

    base = Settings(**_overrides(port=port))
    if port is not None and "GATEWAY_PUBLIC_URL" not in os.environ:
        base = base.model_copy(update={"public_url": f"http://{base.host}:{port}"})
    stack = DevStack(data_dir)
    try:
        settings, banner = prepare(base, stack, emulator_port, redis_port)
        click.echo(banner)
        run_server(create_app(settings), settings.host, settings.port)
    finally:
        stack.stop()


# -- keys -----------------------------------------------------------------------------------

KEY_COLUMNS = ("id", "name", "team_id", "status", "created_at", "expires_at")


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[str(row.get(c) or "-") for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _admin_call(ctx: click.Context, method: str, path: str, body: Any = None) -> Any:
    url, token = ctx.obj
    try:
        with AdminClient(url, token) as admin:
            return admin.call(method, path, body)
    except AdminError as exc:
        raise click.ClickException(str(exc)) from exc


def _show(data: Any, as_json: bool, render: Callable[[Any], str]) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else render(data))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _connection(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--url`` and ``--token`` for commands that call the admin API."""
    command = click.option(
        "--token", envvar="GATEWAY_ADMIN_TOKEN", help="Admin token [GATEWAY_ADMIN_TOKEN]."
    )(command)
    return click.option(
        "--url", envvar="GATEWAY_ADMIN_URL", help="Gateway URL [GATEWAY_PUBLIC_URL]."
    )(command)


def _admin_group(name: str, help_text: str) -> click.Group:
    """A command group that talks to the admin API."""

    @main.group(name=name, help=help_text)
    @_connection
    @click.pass_context
    def group(ctx: click.Context, url: str | None, token: str | None) -> None:
        ctx.obj = (url or Settings().public_url, token)

    return group


keys = _admin_group("keys", "Manage the API keys callers use (through the admin API).")
teams = _admin_group(
    "teams", "Manage teams: credit, ledger, limits and policy (through the admin API)."
)


def _with_options(
    command: Callable[..., Any], options: Sequence[Callable[[Any], Any]]
) -> Callable[..., Any]:
    """``command`` decorated with ``options``, first listed first in ``--help``."""
    for option in reversed(options):
        command = option(command)
    return command


def policy_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The flags that describe a policy; unset flags mean no limit."""
    options = [
        click.option(
            "--allow-endpoint",
            "allowed_endpoints",
            multiple=True,
            help="An endpoint id the key may use (repeat; default: all).",
        ),
        click.option("--max-images", "max_num_images", type=int, help="Most images per request."),
        click.option("--max-loras", type=int, help="Most LoRAs per request."),
        click.option(
            "--lora-pattern",
            "lora_path_patterns",
            multiple=True,
            help="Glob every LoRA path must match (repeat).",
        ),
        click.option("--max-megapixels", type=float, help="Largest output image, in megapixels."),
        click.option(
            "--force-safety-checker",
            is_flag=True,
            default=None,
            help="Always send enable_safety_checker: true.",
        ),
        click.option(
            "--default",
            "defaults",
            multiple=True,
            metavar="FIELD=VALUE",
            help="A value for a field callers leave out (VALUE is JSON; repeat).",
        ),
    ]
    return _with_options(command, options)


def _policy(flags: dict[str, Any]) -> dict[str, Any] | None:
    """The policy the flags describe, or None when no policy flag was given."""
    policy: dict[str, Any] = {}
    for name in ("allowed_endpoints", "lora_path_patterns"):
        if flags[name]:
            policy[name] = list(flags[name])
    for name in ("max_num_images", "max_loras", "max_megapixels", "force_safety_checker"):
        if flags[name] is not None:
            policy[name] = flags[name]
    defaults = {}
    for item in flags["defaults"]:
        field, sep, raw = item.partition("=")
        if not sep:
            raise click.UsageError(f"--default takes FIELD=VALUE, not {item!r}")
        try:
            defaults[field] = json.loads(raw)
        except json.JSONDecodeError:
            defaults[field] = raw
    if defaults:
        policy["defaults"] = defaults
    return policy or None


POLICY_FLAGS = (
    "allowed_endpoints",
    "max_num_images",
    "max_loras",
    "lora_path_patterns",
    "max_megapixels",
    "force_safety_checker",
    "defaults",
)


def _split_flags(flags: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The policy flags (as a policy) and the other flags."""
    return _policy({k: flags[k] for k in POLICY_FLAGS}), {
        k: v for k, v in flags.items() if k not in POLICY_FLAGS
    }


def _policy_text(item: dict[str, Any]) -> str:
    return json.dumps(item.get("policy") or {}, indent=2)


KEY_LIMIT_FLAGS = ("spend_cap_micros", "max_concurrent", "rate_per_minute", "rate_burst")


def key_limit_options(command: Callable[..., Any]) -> Callable[..., Any]:
    return _with_options(
        command,
        [
            click.option(
                "--spend-cap",
                "spend_cap_micros",
                type=int,
                help="Most the key may ever spend, in micro-units.",
            ),
            click.option("--max-concurrent", type=int, help="Most jobs in flight at once."),
            click.option("--rate-per-minute", type=int, help="Requests per minute."),
            click.option("--rate-burst", type=int, help="Requests allowed at once."),
        ],
    )


def _pop_limits(flags: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Remove the limit flags from ``flags``; those the user gave."""
    return {n: v for n in names if (v := flags.pop(n)) is not None}


@keys.command("create")
@click.option("--name", required=True, help="What the key is for.")
@click.option("--team", "team_id", help="Team that owns the key [default].")
@click.option("--expires-at", help="Expiry time, RFC 3339.")
@click.option("--expires-in", type=int, help="Expiry in days from now.")
@key_limit_options
@policy_options
@json_option
@click.pass_context
def keys_create(ctx: click.Context, /, **flags: Any) -> None:
    """Create a key; its secret is shown this once."""
    limits = _pop_limits(flags, KEY_LIMIT_FLAGS)
    policy, rest = _split_flags(flags)
    name, team_id, as_json = rest["name"], rest["team_id"], rest["as_json"]
    expires_at, expires_in = rest["expires_at"], rest["expires_in"]
    if expires_in is not None:
        if expires_at is not None:
            raise click.UsageError("give --expires-at or --expires-in, not both")
        expires_at = (datetime.now(UTC) + timedelta(days=expires_in)).isoformat()
    body = _overrides(name=name, team_id=team_id, expires_at=expires_at, policy=policy) | limits
    created = _admin_call(ctx, "POST", "/keys", body)
    _show(
        created,
        as_json,
        lambda k: f"{_table([k], KEY_COLUMNS)}\n\nSecret (shown only now): {k['secret']}",
    )


@keys.command("list")
@json_option
@click.pass_context
def keys_list(ctx: click.Context, as_json: bool) -> None:
    """List keys (never their secrets)."""
    _show(_admin_call(ctx, "GET", "/keys"), as_json, lambda d: _table(d["keys"], KEY_COLUMNS))


@keys.command("show")
@click.argument("key_id")
@json_option
@click.pass_context
def keys_show(ctx: click.Context, key_id: str, as_json: bool) -> None:
    """Show one key."""
    _show(_admin_call(ctx, "GET", f"/keys/{key_id}"), as_json, lambda k: _table([k], KEY_COLUMNS))


@keys.command("revoke")
@click.argument("key_id")
@json_option
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str, as_json: bool) -> None:
    """Revoke a key: it stops working at once."""
    _show(
        _admin_call(ctx, "POST", f"/keys/{key_id}/revoke"),
        as_json,
        lambda k: _table([k], KEY_COLUMNS),
    )


@keys.command("policy")
@click.argument("key_id")
@policy_options
@click.option("--clear", is_flag=True, help="Remove every limit.")
@json_option
@click.pass_context
def keys_policy(ctx: click.Context, /, key_id: str, **flags: Any) -> None:
    """Replace a key's policy with the one the flags describe."""
    _put_policy(ctx, f"/keys/{key_id}/policy", flags)


@teams.command("show")
@click.argument("team_id")
@json_option
@click.pass_context
def teams_show(ctx: click.Context, team_id: str, as_json: bool) -> None:
    """Show a team: balance, limits, policy."""
    _show(_admin_call(ctx, "GET", f"/teams/{team_id}"), as_json, _team_text)


@teams.command("policy")
@click.argument("team_id")
@policy_options
@click.option("--clear", is_flag=True, help="Remove every limit.")
@json_option
@click.pass_context
def teams_policy(ctx: click.Context, /, team_id: str, **flags: Any) -> None:
    """Replace a team's policy with the one the flags describe (applies to all its keys)."""
    _put_policy(ctx, f"/teams/{team_id}/policy", flags)


def _put_policy(ctx: click.Context, path: str, flags: dict[str, Any]) -> None:
    policy, rest = _split_flags(flags)
    if (policy is None) == (not rest["clear"]):
        raise click.UsageError("give policy options, or --clear to remove every limit")
    _show(_admin_call(ctx, "PUT", path, policy or {}), rest["as_json"], _policy_text)


@keys.command("limits")
@click.argument("key_id")
@key_limit_options
@json_option
@click.pass_context
def keys_limits(ctx: click.Context, /, key_id: str, **flags: Any) -> None:
    """Change a key's limits (0 removes one)."""
    limits = _pop_limits(flags, KEY_LIMIT_FLAGS)
    if not limits:
        raise click.UsageError("give at least one limit option")
    key = _admin_call(ctx, "PATCH", f"/keys/{key_id}", limits)
    _show(key, flags["as_json"], lambda k: _table([k], KEY_COLUMNS))


TEAM_COLUMNS = (
    "id",
    "name",
    "balance_micros",
    "reserved_micros",
    "available_micros",
    "price_multiplier",
)
TEAM_LIMIT_FLAGS = (
    "price_multiplier",
    "daily_cap_micros",
    "monthly_cap_micros",
    "rate_per_minute",
    "rate_burst",
)


def team_limit_options(command: Callable[..., Any]) -> Callable[..., Any]:
    return _with_options(
        command,
        [
            click.option("--price-multiplier", help="Charge = fal's list price x this."),
            click.option(
                "--daily-cap",
                "daily_cap_micros",
                type=int,
                help="Most the team may spend per UTC day, in micro-units.",
            ),
            click.option(
                "--monthly-cap",
                "monthly_cap_micros",
                type=int,
                help="Most the team may spend per UTC month, in micro-units.",
            ),
            click.option("--rate-per-minute", type=int, help="Requests per minute, all keys."),
            click.option("--rate-burst", type=int, help="Requests allowed at once, all keys."),
        ],
    )


def _team_text(team: dict[str, Any]) -> str:
    limits, policy = json.dumps(team["limits"]), json.dumps(team["policy"])
    return f"{_table([team], TEAM_COLUMNS)}\n\nlimits: {limits}\npolicy: {policy}"


@teams.command("create")
@click.option("--name", required=True)
@click.option("--id", "team_id", help="Team id (lowercase, digits, '-'); generated if not given.")
@team_limit_options
@json_option
@click.pass_context
def teams_create(ctx: click.Context, /, name: str, team_id: str | None, **flags: Any) -> None:
    """Create a team (balance 0; add credit with `teams credit`)."""
    limits = _pop_limits(flags, TEAM_LIMIT_FLAGS)
    team = _admin_call(ctx, "POST", "/teams", _overrides(id=team_id, name=name) | limits)
    _show(team, flags["as_json"], _team_text)


@teams.command("list")
@json_option
@click.pass_context
def teams_list(ctx: click.Context, as_json: bool) -> None:
    """List teams with their balances."""
    _show(_admin_call(ctx, "GET", "/teams"), as_json, lambda d: _table(d["teams"], TEAM_COLUMNS))


@teams.command("limits")
@click.argument("team_id")
@team_limit_options
@json_option
@click.pass_context
def teams_limits(ctx: click.Context, /, team_id: str, **flags: Any) -> None:
    """Change a team's multiplier and limits (0 removes a cap or rate limit)."""
    limits = _pop_limits(flags, TEAM_LIMIT_FLAGS)
    if not limits:
        raise click.UsageError("give at least one limit option")
    _show(_admin_call(ctx, "PATCH", f"/teams/{team_id}", limits), flags["as_json"], _team_text)


@teams.command("credit")
@click.argument("team_id")
@click.argument("amount_micros", type=int)
@click.option("--note", default="", help="Why (kept in the ledger).")
@json_option
@click.pass_context
def teams_credit(
    ctx: click.Context, team_id: str, amount_micros: int, note: str, as_json: bool
) -> None:
    """Add credit to a team (negative to take it away); every change is in the ledger."""
    body = {"amount_micros": amount_micros, "note": note}
    _show(
        _admin_call(ctx, "POST", f"/teams/{team_id}/credits", body),
        as_json,
        lambda d: f"balance_micros: {d['balance_micros']}",
    )


LEDGER_COLUMNS = ("at", "kind", "amount_micros", "balance_micros", "request_id", "note")


@teams.command("ledger")
@click.argument("team_id")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@click.pass_context
def teams_ledger(ctx: click.Context, team_id: str, limit: int, as_json: bool) -> None:
    """The team's balance changes, newest first."""
    data = _admin_call(ctx, "GET", f"/teams/{team_id}/ledger?limit={limit}")
    _show(data, as_json, lambda d: _table(d["entries"], LEDGER_COLUMNS))


USAGE_METRICS = ("requests", "images", "megapixels", "cost_micros")


@main.command()
@_connection
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
def usage(
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
    """Usage (requests, images, megapixels, cost) from the admin API."""
    query = _overrides(team_id=team_id, key_id=key_id, endpoint=endpoint, to=end, group_by=group_by)
    if start:
        query["from"] = start
    ctx = click.get_current_context()
    ctx.obj = (url or Settings().public_url, token)
    rows = _admin_call(ctx, "GET", "/usage?" + urlencode(query))["usage"]
    columns = [*(g for g in group_by.split(",") if g), *USAGE_METRICS]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif as_csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buffer.getvalue(), nl=False)
    else:
        click.echo(_table(rows, columns))


@keys.command("rotate-webhook-secret")
@click.argument("key_id")
@json_option
@click.pass_context
def keys_rotate_webhook_secret(ctx: click.Context, key_id: str, as_json: bool) -> None:
    """A new webhook signing secret (shown once); the old one signs too during the grace period."""
    _show(
        _admin_call(ctx, "POST", f"/keys/{key_id}/webhook-secret"),
        as_json,
        lambda d: (
            f"webhook_secret: {d['webhook_secret']}\n"
            f"the previous secret signs too until {d['previous_valid_until']}"
        ),
    )


deliveries = _admin_group("deliveries", "Webhook deliveries to callers (through the admin API).")
DELIVERY_COLUMNS = ("id", "status", "attempts", "last_error", "created_at", "url")


@deliveries.command("list")
@click.option("--key", "key_id", required=True, help="The key whose deliveries to list.")
@click.option("--status", type=click.Choice(["pending", "delivered", "dead"]))
@json_option
@click.pass_context
def deliveries_list(ctx: click.Context, key_id: str, status: str | None, as_json: bool) -> None:
    """A key's webhook deliveries, newest first, with attempts and last error."""
    query = urlencode(_overrides(key_id=key_id, status=status))
    data = _admin_call(ctx, "GET", f"/deliveries?{query}")
    _show(data, as_json, lambda d: _table(d["deliveries"], DELIVERY_COLUMNS))


@deliveries.command("replay")
@click.argument("delivery_id", required=False)
@click.option("--dead-of-key", "key_id", help="Replay every dead-lettered delivery of this key.")
@json_option
@click.pass_context
def deliveries_replay(
    ctx: click.Context, delivery_id: str | None, key_id: str | None, as_json: bool
) -> None:
    """Queue a delivery again (attempts reset), or all of a key's dead-lettered ones."""
    if (delivery_id is None) == (key_id is None):
        raise click.UsageError("give a DELIVERY_ID or --dead-of-key KEY_ID")
    if delivery_id is not None:
        data = _admin_call(ctx, "POST", f"/deliveries/{delivery_id}/replay")
        _show(data, as_json, lambda d: _table([d], DELIVERY_COLUMNS))
    else:
        data = _admin_call(ctx, "POST", f"/deliveries/replay?{urlencode({'key_id': key_id})}")
        _show(data, as_json, lambda d: _table(d["deliveries"], DELIVERY_COLUMNS))
