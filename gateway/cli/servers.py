"""The commands that run servers: ``serve`` (the gateway), ``emulator`` (fal, locally) and
``dev`` (everything on one laptop)."""

from __future__ import annotations

import logging
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import uvicorn
from uvicorn.config import LOGGING_CONFIG

from gateway.cli.flags import given
from gateway.settings import EmulatorSettings, Settings
from gateway.telemetry.logs import configure_logging, logging_config
from gateway.telemetry.metrics import MULTIPROC_ENV

logger = logging.getLogger(__name__)

Command = TypeVar("Command", bound=Callable[..., Any])


def run_server(
    app: Any,
    host: str,
    port: int,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    shutdown_timeout: int | None = None,
    settings: Settings | None = None,
) -> None:
    """Serve an ASGI app with uvicorn (uvloop + httptools), optionally over TLS, until a
    signal stops it; on the signal, open requests get ``shutdown_timeout`` seconds to finish.
    Logs as the gateway's ``settings`` say (else as uvicorn does)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        log_level=settings.log_level if settings else "info",
        log_config=_log_config(settings) if settings else LOGGING_CONFIG,
        access_log=False,  # the gateway's own (``telemetry.access_log``) names routes, not paths
        timeout_graceful_shutdown=shutdown_timeout,
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


def _log_config(settings: Settings) -> dict[str, Any]:
    return logging_config(settings.log_format, settings.log_level)


def _tls_options(command: Command) -> Command:
    """``--tls-cert`` and ``--tls-key``: serve HTTPS."""
    path = click.Path(exists=True, path_type=Path)
    command = click.option("--tls-key", type=path, help="PEM private key.")(command)
    return click.option("--tls-cert", type=path, help="PEM certificate.")(command)


def _serve_settings(settings: Settings | EmulatorSettings, app: Any) -> None:
    """Serve ``app`` where ``settings`` say, over TLS if they name a certificate."""
    run_server(
        app,
        settings.host,
        settings.port,
        tls_cert=settings.tls_cert,
        tls_key=settings.tls_key,
        shutdown_timeout=settings.shutdown_timeout if isinstance(settings, Settings) else None,
        settings=settings if isinstance(settings, Settings) else None,
    )


def _check_tls(settings: Settings | EmulatorSettings) -> None:
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")


@click.command()
@click.option("--host", help="Address to listen on [GATEWAY_EMULATOR_HOST, 127.0.0.1].")
@click.option("--port", type=int, help="Port to listen on [GATEWAY_EMULATOR_PORT, 8765].")
@_tls_options
def emulator(
    host: str | None, port: int | None, tls_cert: Path | None, tls_key: Path | None
) -> None:
    """Run the fal emulator: fal's queue, sync and storage APIs, locally and for free."""
    from gateway.emulator import create_emulator_app

    settings = EmulatorSettings(**given(host=host, port=port, tls_cert=tls_cert, tls_key=tls_key))
    _check_tls(settings)
    _serve_settings(settings, create_emulator_app(settings))


@click.command()
@click.option("--host", help="Address to listen on [GATEWAY_HOST, 127.0.0.1].")
@click.option("--port", type=int, help="Port to listen on [GATEWAY_PORT, 8000].")
@click.option("--workers", type=int, help="Worker processes [GATEWAY_WORKERS, 1].")
@_tls_options
def serve(**flags: Any) -> None:
    """Run the gateway in production (settings from GATEWAY_* variables and .env)."""
    from gateway.app import create_app

    settings = Settings(**given(**flags))
    configure_logging(settings.log_format, settings.log_level)
    try:
        settings.link_signing_key()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    _check_tls(settings)
    if not settings.fal_key:
        logger.warning(
            "GATEWAY_FAL_KEY is not set: jobs go only to the fal accounts already in Redis "
            "(add one with `fal-gateway upstreams add`)"
        )
    if settings.workers == 1:
        _serve_settings(settings, create_app(settings))
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
        log_level=settings.log_level,
        log_config=_log_config(settings),
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_timeout,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
    )


@click.command()
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

    base = Settings(**given(port=port))
    if port is not None and "GATEWAY_PUBLIC_URL" not in os.environ:
        base = base.model_copy(update={"public_url": f"http://{base.host}:{port}"})
    stack = DevStack(data_dir)
    try:
        settings, banner = prepare(base, stack, emulator_port, redis_port)
        click.echo(banner)
        run_server(
            create_app(settings),
            settings.host,
            settings.port,
            shutdown_timeout=settings.shutdown_timeout,
            settings=settings,
        )
    finally:
        stack.stop()
