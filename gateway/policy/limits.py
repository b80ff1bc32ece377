"""Key and team limits, each declared once.

A limit is a field of ``KeyLimits`` or ``TeamLimits``: its type and bounds are the admin API's,
its description is the CLI flag's help, and its ``Stored`` mark names the field of the key or
team record in Redis that holds it (where 0 means "no limit"). The Redis maps and the CLI flags
are derived from these models; nothing else lists the limits.

Every limit has an upper bound, so nothing the admin API stores can overflow where it is used:
Redis keeps counters as signed 64-bit integers (``HINCRBY`` refuses to pass 2**63 - 1), and the
Lua scripts compare them as doubles, exact only up to 2**53 (about 9.007e15).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PPM = 1_000_000

INT64_MAX = 2**63 - 1
MAX_MICROS = 10**15
"""Largest spending cap, credit amount and team balance: a billion currency units. Below 2**53,
so the Lua scripts' arithmetic on it is exact, and a balance plus a credit of this size is still
far inside int64 (about 9.2e18)."""
MAX_BYTES = 10**15
"""Largest upload quota (a petabyte), below 2**53 for the same reasons."""
MAX_RATE = 1_000_000
"""Largest rate per minute and burst: about 16,700 requests a second, past what a gateway serves."""
MAX_CONCURRENT = 100_000
"""Largest number of jobs a key may have in flight."""
MAX_MULTIPLIER = 1000
"""Largest price multiplier: its parts per million (10**9 at most) times a request's list price
in micro-units stays below 2**53 in the admission script."""


def _plain(value: Any) -> str:
    return str(int(value or 0))


def _ppm(value: Any) -> str:
    return str(int(Decimal(value) * PPM))


@dataclass(frozen=True)
class Stored:
    """The Redis record field that holds a limit, and how its value is written there."""

    field: str
    encode: Callable[[Any], str] = _plain
    flag: str | None = None
    """The CLI flag, when it is not ``--<field name with dashes>``."""


SyncHangup = Literal["charge", "refund"]
ChargeRule = Literal["refund", "charge_billable_units", "charge_estimate"]
"""What a job that ran and produced nothing costs (``limits.charge_rules``)."""
DEFAULT_CHARGE_RULE = "charge_billable_units"
Micros = Annotated[int, Field(ge=0, le=MAX_MICROS)]
Rate = Annotated[int, Field(ge=1, le=MAX_RATE)]


class KeyLimits(BaseModel):
    """A key's own limits; unset (null) means none."""

    model_config = ConfigDict(extra="forbid")

    spend_cap_micros: Annotated[
        Micros | None,
        Field(description="Most the key may ever spend (settled plus reserved), in micro-units."),
        Stored("spend_cap", flag="--spend-cap"),
    ] = None
    max_concurrent: Annotated[
        Annotated[int, Field(ge=1, le=MAX_CONCURRENT)] | None,
        Field(description="Most jobs in flight at once."),
        Stored("max_concurrent"),
    ] = None
    rate_per_minute: Annotated[
        Rate | None, Field(description="Requests per minute."), Stored("rate_per_minute")
    ] = None
    rate_burst: Annotated[
        Rate | None, Field(description="Requests allowed at once."), Stored("rate_burst")
    ] = None
    upload_quota_bytes: Annotated[
        Annotated[int, Field(ge=1, le=MAX_BYTES)] | None,
        Field(description="Most bytes the key may upload to fal's storage, in all."),
        Stored("upload_quota"),
    ] = None


class TeamLimits(BaseModel):
    """Team-wide limits; an unset (null) limit means none."""

    model_config = ConfigDict(extra="forbid")

    price_multiplier: Annotated[
        Decimal,
        Field(
            ge=0,
            le=MAX_MULTIPLIER,
            decimal_places=6,
            description="Charge = fal's list price x this.",
        ),
        Stored("multiplier_ppm", encode=_ppm),
    ] = Decimal(1)
    daily_cap_micros: Annotated[
        Micros | None,
        Field(description="Most the team may spend per UTC day, in micro-units."),
        Stored("daily_cap", flag="--daily-cap"),
    ] = None
    monthly_cap_micros: Annotated[
        Micros | None,
        Field(description="Most the team may spend per UTC month, in micro-units."),
        Stored("monthly_cap", flag="--monthly-cap"),
    ] = None
    rate_per_minute: Annotated[
        Rate | None,
        Field(description="Requests per minute, all keys."),
        Stored("rate_per_minute"),
    ] = None
    rate_burst: Annotated[
        Rate | None,
        Field(description="Requests allowed at once, all keys."),
        Stored("rate_burst"),
    ] = None
    low_balance_micros: Annotated[
        Micros | None,
        Field(
            description="Alert (team.low_balance) once each time the balance falls below this, "
            "in micro-units."
        ),
        Stored("low_balance", flag="--low-balance"),
    ] = None
    near_cap_percent: Annotated[
        Annotated[int, Field(ge=1, le=100)] | None,
        Field(
            description="Alert (team.near_cap) once a day's or month's spend reaches this "
            "percentage of its cap."
        ),
        Stored("near_cap_pct"),
    ] = None
    sync_hangup: Annotated[
        SyncHangup,
        Field(
            description="A sync run whose caller hangs up: charge it as fal does (charge), "
            "or refund it (refund)."
        ),
        Stored("sync_hangup", encode=str),
    ] = "charge"
    failed_job: Annotated[
        ChargeRule,
        Field(
            description="A job fal accepted that failed: charge what fal billed for it "
            "(charge_billable_units), refund it (refund), or charge its reservation "
            "(charge_estimate)."
        ),
        Stored("failed_job", encode=str),
    ] = "charge_billable_units"
    cancelled_running: Annotated[
        ChargeRule,
        Field(
            description="A job cancelled while it ran that ended without output: charge what "
            "fal billed for it (charge_billable_units), refund it (refund), or charge its "
            "reservation (charge_estimate)."
        ),
        Stored("cancelled_running", encode=str),
    ] = "charge_billable_units"


def stored_limits(model: type[BaseModel]) -> Iterator[tuple[str, Stored]]:
    """Each limit of ``model`` with where it is stored."""
    for name, info in model.model_fields.items():
        for mark in info.metadata:
            if isinstance(mark, Stored):
                yield name, mark


def redis_fields(model: type[BaseModel], limits: dict[str, Any]) -> dict[str, str]:
    """The record fields for the limits given (only those present in ``limits``)."""
    return {
        mark.field: mark.encode(limits[name])
        for name, mark in stored_limits(model)
        if name in limits
    }


def integer_limits(model: type[BaseModel], fields: dict[str, str]) -> dict[str, int | None]:
    """The integer limits of a record as the admin API shows them (None: no limit).

    A value past int64, which admin APIs before the bounds above could store, reads as no limit:
    no counter in Redis can reach it, and JSON answers could not carry it."""
    found: dict[str, int | None] = {}
    for name, mark in stored_limits(model):
        if mark.encode is _plain:
            value = int(fields.get(mark.field) or 0)
            found[name] = value if 0 < value <= INT64_MAX else None
    return found
