"""Exports of a team's ledger and of per-request usage (the usage log), by time range, as CSV or
JSON lines, before retention trims them (``ledger_retention``, ``usage_retention``); and the
usage log a page at a time, from a cursor.

Streamed: each stream is read a page at a time with ``XRANGE`` between the stream ids of the
range (entry ids are their write time in ms), so an export of any size holds one page.

A usage record is one settled request: its outcome, output images and megapixels, list-price
cost and charge, fal's billable units (``x-fal-billable-units``; empty when fal did not say) and
the version of the prices that charged it (``price_version``, empty until prices are versioned).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, Field, model_validator
from redis.asyncio import Redis

from gateway.accounts.keys import rfc3339
from gateway.accounts.teams import TeamId, ledger_entry
from gateway.accounts.tokens import TEAM_ID_PATTERN
from gateway.store import redis_keys
from gateway.store.pool import fields_of, store_errors
from gateway.web import jsoncodec

PAGE = 1000
"""Stream entries read per round trip."""
CHUNK_BYTES = 64 * 1024
"""Encoded rows are sent in chunks of about this size."""

LEDGER_COLUMNS = (
    "id",
    "at",
    "kind",
    "amount_micros",
    "balance_micros",
    "request_id",
    "key_id",
    "note",
)
USAGE_COLUMNS = (
    "id",
    "at",
    "team_id",
    "request_id",
    "key_id",
    "endpoint",
    "day",
    "outcome",
    "images",
    "pixels",
    "cost_micros",
    "overrun_micros",
    "seconds",
    "megapixels",
    "list_cost_micros",
    "billable_units",
    "price_version",
)

Row = dict[str, Any]


def _moment(value: Any) -> Any:
    """A day (``YYYY-MM-DD``, UTC) or an RFC 3339 time with its offset."""
    if not isinstance(value, str):
        return value
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError("must be a date (YYYY-MM-DD) or an RFC 3339 time with an offset")
    return moment


Moment = Annotated[date | datetime, BeforeValidator(_moment)]


class TimeRange(BaseModel):
    """``from``/``to``: days (``to`` is the whole day) or RFC 3339 times, both included;
    default: from the first entry to now."""

    start: Moment | None = Field(None, alias="from")
    end: Moment | None = Field(None, alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.first_ms() > self.last_ms():
            raise ValueError("from must not be after to")
        return self

    def first_ms(self) -> int:
        if self.start is None:
            return 0
        if isinstance(self.start, datetime):
            return _ms(self.start)
        return _ms(datetime.combine(self.start, time(), UTC))

    def last_ms(self) -> int:
        if self.end is None:
            return _ms(datetime.now(UTC))
        if isinstance(self.end, datetime):
            return _ms(self.end)
        return _ms(datetime.combine(self.end, time.max, UTC))


class ExportQuery(TimeRange):
    """A time range, and the export's format."""

    format: Literal["csv", "jsonl"] = "csv"

    @property
    def media_type(self) -> str:
        return "text/csv; charset=utf-8" if self.format == "csv" else "application/x-ndjson"


class UsageExportQuery(ExportQuery):
    team_id: TeamId | None = None
    """Only this team (default: every team)."""


def _ms(moment: datetime) -> int:
    return max(0, int(moment.timestamp() * 1000))


async def _entries(
    redis: Redis, stream: str, first_ms: int, last_ms: int
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """The stream's entries written between the two times (ms, both included), oldest first."""
    low = f"{first_ms}-0"
    while True:
        async with store_errors():
            page = await redis.xrange(stream, min=low, max=str(last_ms), count=PAGE) or []
        entry_id = ""
        for raw_id, fields in page:
            entry_id = str(raw_id)
            yield entry_id, fields_of(fields)
        if len(page) < PAGE:
            return
        low = f"({entry_id}"


async def ledger_rows(redis: Redis, team_id: str, query: TimeRange) -> AsyncIterator[Row]:
    """The team's ledger entries in the range, oldest first."""
    stream = redis_keys.ledger(team_id)
    async for entry_id, fields in _entries(redis, stream, query.first_ms(), query.last_ms()):
        yield ledger_entry(entry_id, fields)


def usage_entry(team_id: str, entry_id: str, fields: dict[str, str]) -> Row:
    """A usage log entry: one settled request; ``seconds`` from its admission to its
    settlement (None for entries written before admissions were timed)."""
    settled_ms = int(entry_id.split("-")[0])
    admitted_ms = fields.get("admitted_ms")
    list_cost, units = fields.get("list_cost_micros"), fields.get("billable_units")
    return {
        "id": entry_id,
        "at": rfc3339(settled_ms / 1000),
        "team_id": team_id,
        "request_id": fields.get("request_id") or None,
        "key_id": fields.get("key_id"),
        "endpoint": fields.get("endpoint"),
        "day": fields.get("day"),
        "outcome": fields.get("outcome"),
        **{
            name: int(fields.get(name) or 0)
            for name in ("images", "pixels", "cost_micros", "overrun_micros")
        },
        "seconds": (settled_ms - int(admitted_ms)) / 1000 if admitted_ms else None,
        "megapixels": int(fields.get("pixels") or 0) / 1_000_000,
        "list_cost_micros": int(list_cost) if list_cost else None,
        "billable_units": _number(units) if units else None,
        "price_version": fields.get("price_version") or None,
    }


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


async def usage_log_rows(
    redis: Redis, team_ids: Iterable[str], query: TimeRange
) -> AsyncIterator[Row]:
    """Every settled request of ``team_ids`` in the range: team by team, oldest first."""
    first, last = query.first_ms(), query.last_ms()
    for team_id in team_ids:
        async for entry_id, fields in _entries(redis, redis_keys.usage_log(team_id), first, last):
            yield usage_entry(team_id, entry_id, fields)


CURSOR_PATTERN = rf"^{TEAM_ID_PATTERN}:[0-9]{{1,20}}-[0-9]{{1,20}}$"
MAX_PAGE = 1000


class UsagePageQuery(TimeRange):
    """A time range, one team or all, and where the previous page ended."""

    team_id: TeamId | None = None
    after: Annotated[str, Field(pattern=CURSOR_PATTERN)] | None = None
    """``next`` of the previous page: ``<team id>:<usage log entry id>``."""
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 100


async def usage_page(
    redis: Redis, team_ids: Sequence[str], query: UsagePageQuery
) -> tuple[list[Row], str | None]:
    """Up to ``query.limit`` settled requests of ``team_ids`` (sorted) in the range, after the
    cursor, team by team and oldest first; and the cursor to pass for the next page (None once
    this page is the last)."""
    after_team, _, after_id = (query.after or "").partition(":")
    rows: list[Row] = []
    for team_id in sorted(team_ids):
        if team_id < after_team:
            continue
        low = f"{query.first_ms()}-0"
        if team_id == after_team and int(after_id.split("-")[0]) >= query.first_ms():
            low = f"({after_id}"
        want = query.limit - len(rows)
        async with store_errors():
            page = await redis.xrange(
                redis_keys.usage_log(team_id), min=low, max=str(query.last_ms()), count=want
            )
        rows += [usage_entry(team_id, str(i), fields_of(fields)) for i, fields in page or []]
        if len(rows) == query.limit:
            return rows, f"{rows[-1]['team_id']}:{rows[-1]['id']}"
    return rows, None


def _csv_line(columns: Sequence[str]) -> Callable[[Row], str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def line(row: Row) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
        return buffer.getvalue()

    return line


async def encoded(
    rows: AsyncIterator[Row], fmt: str, columns: Sequence[str]
) -> AsyncIterator[bytes]:
    """``rows`` as CSV (with a header line) or JSON lines, in chunks of about ``CHUNK_BYTES``."""
    if fmt == "csv":
        line = _csv_line(columns)
        parts = [",".join(columns) + "\n"]
    else:
        line = _json_line
        parts = []
    size = 0
    async for row in rows:
        text = line(row)
        parts.append(text)
        size += len(text)
        if size >= CHUNK_BYTES:
            yield "".join(parts).encode()
            parts, size = [], 0
    if parts:
        yield "".join(parts).encode()


def _json_line(row: Row) -> str:
    return jsoncodec.dumps(row) + "\n"


async def primed(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` with its first one already read: a store that is down is then a 503 before
    the answer starts, not a broken stream."""
    first = await anext(chunks, None)

    async def rest() -> AsyncIterator[bytes]:
        if first is not None:
            yield first
        async for chunk in chunks:
            yield chunk

    return rest()
