"""The console's usage page: usage by team, key, endpoint and day (``limits.usage``, as the admin
API reports it) as a chart of spend per day and a table, and the same table as CSV."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.catalog import CATALOG
from gateway.console.charts import bar_chart
from gateway.console.sessions import CONSOLE, Session
from gateway.http.console_view import view
from gateway.http.pages import signed_in
from gateway.http.services import Services
from gateway.limits.exports import encoded
from gateway.limits.usage import COLUMNS, GROUPS, MAX_DAYS, days, usage_rows

DEFAULT_DAYS = 14


@dataclass(frozen=True)
class Filters:
    team_id: str
    key_id: str
    endpoint: str
    start: date
    end: date
    group_by: list[str]
    problem: str | None

    def query(self) -> str:
        """The filters as a query string (for the CSV link)."""
        pairs = [
            ("team_id", self.team_id),
            ("key_id", self.key_id),
            ("endpoint", self.endpoint),
            ("from", self.start.isoformat()),
            ("to", self.end.isoformat()),
            *(("group_by", group) for group in self.group_by),
        ]
        return urlencode(pairs)


def _day(text: str | None, default: date) -> tuple[date, str | None]:
    if not text:
        return default, None
    try:
        return date.fromisoformat(text), None
    except ValueError:
        return default, f"{text!r} is not a date (YYYY-MM-DD)"


def filters(request: Request) -> Filters:
    """The page's filters from its query (bad dates fall back to the default span, said)."""
    params = request.query_params
    today = datetime.now(UTC).date()
    start, bad_start = _day(params.get("from"), today - timedelta(days=DEFAULT_DAYS - 1))
    end, bad_end = _day(params.get("to"), today)
    problem = bad_start or bad_end
    if end < start:
        problem, start, end = "The first day is after the last", end, start
    if (end - start).days >= MAX_DAYS:
        problem, start = f"At most {MAX_DAYS} days at once", end - timedelta(days=MAX_DAYS - 1)
    groups = [g for g in params.getlist("group_by") if g in GROUPS] or ["team_id", "endpoint"]
    return Filters(
        team_id=params.get("team_id", ""),
        key_id=params.get("key_id", ""),
        endpoint=params.get("endpoint", ""),
        start=start,
        end=end,
        group_by=[g for g in GROUPS if g in groups],
        problem=problem,
    )


async def _rows(gateway: Services, chosen: Filters, group_by: list[str]) -> list[dict[str, Any]]:
    team_ids = [chosen.team_id] if chosen.team_id else await gateway.teams.ids()
    return await usage_rows(
        gateway.redis,
        team_ids,
        chosen.start,
        chosen.end,
        key_id=chosen.key_id or None,
        endpoint=chosen.endpoint or None,
        group_by=group_by,
    )


async def usage(request: Request, gateway: Services, session: Session) -> Response:
    chosen = filters(request)
    rows = await _rows(gateway, chosen, chosen.group_by)
    per_day = {row["day"]: row for row in await _rows(gateway, chosen, ["day"])}
    spend = [
        (day.isoformat(), per_day.get(day.isoformat(), {}).get("cost_micros", 0) / 1_000_000)
        for day in days(chosen.start, chosen.end)
    ]
    return view(
        request,
        session,
        "/console/usage",
        "console/usage.html",
        title="Usage",
        chosen=chosen,
        error=chosen.problem,
        team_ids=await gateway.teams.ids(),
        endpoints=sorted(CATALOG),
        groups=GROUPS,
        rows=rows,
        columns=COLUMNS,
        total=sum(row["cost_micros"] for row in rows),
        chart=bar_chart(spend, "Spend per day"),
    )


async def usage_csv(request: Request, gateway: Services, session: Session) -> Response:
    """The usage table of the page's filters, as CSV."""
    chosen = filters(request)
    rows = await _rows(gateway, chosen, chosen.group_by)

    async def listed() -> AsyncIterator[dict[str, Any]]:
        for row in rows:
            yield row

    name = f"usage-{chosen.team_id or 'all'}-{chosen.start}-{chosen.end}.csv"
    return StreamingResponse(
        encoded(listed(), "csv", [*chosen.group_by, *COLUMNS]),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


ROUTES = [
    Route("/console/usage", signed_in(CONSOLE, usage), methods=["GET"]),
    Route("/console/usage.csv", signed_in(CONSOLE, usage_csv), methods=["GET"]),
]
