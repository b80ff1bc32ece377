"""The admin API's exports: a team's ledger and per-request usage, by time range, as CSV or
JSON lines, streamed (``limits.exports``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.http.admin import admin, query
from gateway.http.admin_teams import team_id_of
from gateway.limits.exports import (
    LEDGER_COLUMNS,
    USAGE_COLUMNS,
    ExportQuery,
    UsageExportQuery,
    encoded,
    ledger_rows,
    primed,
    usage_log_rows,
)


def _download(chunks: AsyncIterator[bytes], export: ExportQuery, name: str) -> Response:
    disposition = f'attachment; filename="{name}.{export.format}"'
    return StreamingResponse(
        chunks, media_type=export.media_type, headers={"Content-Disposition": disposition}
    )


async def export_ledger(request: Request) -> Response:
    """``?from=&to=&format=csv|jsonl``: the team's ledger entries in the range, oldest first."""
    gateway = admin(request)
    team_id = team_id_of(request)
    export = query(request, ExportQuery)
    await gateway.teams.require(team_id)
    rows = ledger_rows(gateway.redis, team_id, export)
    chunks = await primed(encoded(rows, export.format, LEDGER_COLUMNS))
    return _download(chunks, export, f"ledger-{team_id}")


async def export_usage(request: Request) -> Response:
    """``?team_id=&from=&to=&format=``: every settled request in the range (all teams when no
    ``team_id``), team by team, oldest first."""
    gateway = admin(request)
    export = query(request, UsageExportQuery)
    if export.team_id:
        await gateway.teams.require(export.team_id)
    team_ids = [export.team_id] if export.team_id else await gateway.teams.ids()
    rows = usage_log_rows(gateway.redis, team_ids, export)
    chunks = await primed(encoded(rows, export.format, USAGE_COLUMNS))
    return _download(chunks, export, f"usage-{export.team_id or 'all'}")


ROUTES = [
    Route("/admin/v1/teams/{team_id}/ledger/export", export_ledger, methods=["GET"]),
    Route("/admin/v1/usage/export", export_usage, methods=["GET"]),
]
