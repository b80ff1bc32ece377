"""The admin API's exports: a team's ledger and per-request usage, by time range, as CSV or
JSON lines, streamed; and per-request usage a page at a time (``limits.exports``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.http.admin import admin, query
from gateway.http.admin_teams import team_id_of
from gateway.http.services import Services
from gateway.limits.exports import (
    LEDGER_COLUMNS,
    USAGE_COLUMNS,
    ExportQuery,
    UsageExportQuery,
    UsagePageQuery,
    encoded,
    ledger_rows,
    primed,
    usage_log_rows,
    usage_page,
)
from gateway.web.jsoncodec import JSONResponse


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


async def _teams(gateway: Services, team_id: str | None) -> list[str]:
    """``team_id`` (a 404 when unknown), or every team."""
    if team_id:
        await gateway.teams.require(team_id)
        return [team_id]
    return await gateway.teams.ids()


async def export_usage(request: Request) -> Response:
    """``?team_id=&from=&to=&format=``: every settled request in the range (all teams when no
    ``team_id``), team by team, oldest first."""
    gateway = admin(request)
    export = query(request, UsageExportQuery)
    rows = usage_log_rows(gateway.redis, await _teams(gateway, export.team_id), export)
    chunks = await primed(encoded(rows, export.format, USAGE_COLUMNS))
    return _download(chunks, export, f"usage-{export.team_id or 'all'}")


async def usage_records(request: Request) -> Response:
    """``?team_id=&from=&to=&after=&limit=``: a page of settled requests (as the export lists
    them), and ``next``, the ``after`` of the following page (null on the last)."""
    gateway = admin(request)
    page = query(request, UsagePageQuery)
    rows, cursor = await usage_page(gateway.redis, await _teams(gateway, page.team_id), page)
    return JSONResponse({"records": rows, "next": cursor})


ROUTES = [
    Route("/admin/v1/teams/{team_id}/ledger/export", export_ledger, methods=["GET"]),
    Route("/admin/v1/usage/export", export_usage, methods=["GET"]),
    Route("/admin/v1/usage/records", usage_records, methods=["GET"]),
]
