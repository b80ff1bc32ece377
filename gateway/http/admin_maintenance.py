"""The admin API's upkeep of the store: repairing the indexes of teams and keys
(``accounts.indexes``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounts.indexes import REPAIR_GRACE, repair_all
from gateway.http.admin import admin, body
from gateway.web.jsoncodec import JSONResponse


class IndexRepair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: Annotated[int, Field(ge=60, le=30 * 86_400)] = REPAIR_GRACE
    """How old an index entry without a record must be to be dropped: younger ones may be
    creations in progress."""


async def repair_indexes(request: Request) -> Response:
    """Drop index entries without a record, re-add records' missing entries; what changed."""
    gateway = admin(request)
    spec = await body(request, IndexRepair) if await request.body() else IndexRepair()
    repaired = await repair_all(gateway.redis, spec.grace_seconds)
    return JSONResponse({name: result.public() for name, result in repaired.items()})


ROUTES = [
    Route("/admin/v1/maintenance/repair-indexes", repair_indexes, methods=["POST"]),
]
