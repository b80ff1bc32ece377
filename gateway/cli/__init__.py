"""``fal-gateway`` (also ``python -m gateway``): the product's command line.

The commands live in modules by subject: ``servers`` (``serve``, ``emulator``, ``dev``), and the
admin API's ``keys``, ``teams``, ``prices``, ``usage``, ``deliveries``, ``maintenance`` and
``upstreams``; ``main`` gathers them.
"""

from __future__ import annotations

import click

from gateway.cli import (
    deliveries,
    keys,
    maintenance,
    prices,
    servers,
    teams,
    upstreams,
    usage,
)
from gateway.telemetry.logs import configure_logging


@click.group()
def main() -> None:
    """fal gateway: resell or share fal.ai's FLUX editing endpoints behind your own keys."""
    configure_logging()  # text; the servers log as their settings say


for _command in (
    servers.serve,
    servers.emulator,
    servers.dev,
    keys.group,
    teams.group,
    prices.group,
    usage.usage,
    deliveries.group,
    maintenance.group,
    upstreams.group,
):
    main.add_command(_command)
