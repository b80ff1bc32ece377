"""``fal-gateway`` (also ``python -m gateway``): the product's command line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
import uvicorn

from gateway.settings import EmulatorSettings


def _overrides(**flags: Any) -> dict[str, Any]:
    """Flags the user actually gave; they win over settings from the environment."""
    return {name: value for name, value in flags.items() if value is not None}


def run_server(
    app: Any, host: str, port: int, *, tls_cert: Path | None, tls_key: Path | None
) -> None:
    """Serve an ASGI app with uvicorn (uvloop + httptools), optionally over TLS."""
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
    uvicorn.Server(config).run()


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
