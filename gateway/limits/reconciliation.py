"""fal's bill, matched: the gateway's charges against the units fal billed, by endpoint and day.

Read from the usage log (one record per settled request, ``limits.exports``). For each job fal
said it billed (``billable_units``), two things should agree:

- **price**: the gateway's list price of the job (``list_cost_micros``, from the output's sizes
  and the catalog's price per megapixel) against fal's cost of it (the billed units times the
  same price per unit, ``charge_rules.units_cost_micros``); ``price_ratio`` = list / fal. A job
  refunded (or charged) while fal billed otherwise shows here too.
- **units**: fal's units against what fal's published rule gives for the output the gateway saw
  (``catalog.pricing.fal_billable_units``: megapixels rounded up, per image); ``units_ratio`` =
  billed / expected. Output images of one request are taken to share one size.

A ratio further than ``tolerance`` from 1 (or a side that is zero while the other is not) flags
the job, and the endpoint's day when its totals are off. Jobs fal said nothing of are counted
(``jobs_without_units``) and never flagged. The charge itself (``charged_micros``, after the
team's multiplier and charge rules) is shown beside fal's cost: the margin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field

from gateway.catalog.common import Size
from gateway.catalog.pricing import fal_billable_units
from gateway.limits.charge_rules import units_cost_micros
from gateway.limits.exports import Row, TimeRange
from gateway.upstream.fal_billing import units_text

MAX_FLAGGED_JOBS = 1000


class ReconciliationQuery(TimeRange):
    """A time range; how far a ratio may be from 1; how many flagged jobs to list."""

    tolerance: Annotated[Decimal, Field(ge=0, le=100, decimal_places=6)] = Decimal("0.05")
    limit: Annotated[int, Field(ge=0, le=MAX_FLAGGED_JOBS)] = 100
    """Most flagged jobs listed (all are counted)."""


def expected_units(row: Row) -> int:
    """fal's units for a job's output by its published rule (0: no output)."""
    images, pixels = int(row["images"] or 0), int(row["pixels"] or 0)
    if not images or not pixels:
        return 0
    return fal_billable_units(Size(-(-pixels // images), 1), images)


def _off(ours: Decimal, theirs: Decimal, tolerance: Decimal) -> tuple[bool, float | None]:
    """Whether ``ours`` / ``theirs`` is further than ``tolerance`` from 1, and the ratio."""
    if not theirs:
        return bool(ours), None
    ratio = ours / theirs
    return abs(ratio - 1) > tolerance, float(round(ratio, 6))


@dataclass
class _Totals:
    jobs: int = 0
    jobs_without_units: int = 0
    flagged_jobs: int = 0
    images: int = 0
    pixels: int = 0
    list_cost: int = 0
    charged: int = 0
    units: Decimal = Decimal(0)
    expected: int = 0
    fal_cost: int = 0
    """Over the jobs fal billed (list cost and expected units too, for the ratios)."""
    matched_list_cost: int = 0
    matched_expected: int = 0

    def add(self, row: Row, units: Decimal | None, fal_cost: int, expected: int) -> None:
        list_cost = int(row["list_cost_micros"] or 0)
        self.jobs += 1
        self.images += int(row["images"] or 0)
        self.pixels += int(row["pixels"] or 0)
        self.list_cost += list_cost
        self.charged += int(row["cost_micros"] or 0)
        self.expected += expected
        if units is None:
            self.jobs_without_units += 1
            return
        self.units += units
        self.fal_cost += fal_cost
        self.matched_list_cost += list_cost
        self.matched_expected += expected

    def row(self, day: str, endpoint: str, tolerance: Decimal) -> Row:
        price_off, price_ratio = _off(
            Decimal(self.matched_list_cost), Decimal(self.fal_cost), tolerance
        )
        units_off, units_ratio = _off(self.units, Decimal(self.matched_expected), tolerance)
        return {
            "day": day,
            "endpoint": endpoint,
            "jobs": self.jobs,
            "jobs_without_units": self.jobs_without_units,
            "flagged_jobs": self.flagged_jobs,
            "images": self.images,
            "megapixels": self.pixels / 1_000_000,
            "list_cost_micros": self.list_cost,
            "charged_micros": self.charged,
            "billable_units": units_text(self.units),
            "expected_units": self.expected,
            "fal_cost_micros": self.fal_cost,
            "margin_micros": self.charged - self.fal_cost,
            "price_ratio": price_ratio,
            "units_ratio": units_ratio,
            "flags": [name for name, off in (("price", price_off), ("units", units_off)) if off],
        }


async def reconcile(rows: AsyncIterator[Row], query: ReconciliationQuery) -> dict[str, Any]:
    """The report over the usage log ``rows``: a row per day and endpoint (by day, then
    endpoint), and up to ``query.limit`` flagged jobs, in the order of ``rows``."""
    totals: dict[tuple[str, str], _Totals] = {}
    flagged: list[Row] = []
    tolerance = query.tolerance
    async for row in rows:
        endpoint, day = str(row["endpoint"]), str(row["day"])
        billed = row["billable_units"]
        units = None if billed is None else Decimal(str(billed))
        fal_cost = 0 if units is None else units_cost_micros(endpoint, units_text(units))
        expected = expected_units(row)
        group = totals.setdefault((day, endpoint), _Totals())
        group.add(row, units, fal_cost, expected)
        if units is None:
            continue
        list_cost = Decimal(int(row["list_cost_micros"] or 0))
        price_off, price_ratio = _off(list_cost, Decimal(fal_cost), tolerance)
        units_off, units_ratio = _off(units, Decimal(expected), tolerance)
        if not (price_off or units_off):
            continue
        group.flagged_jobs += 1
        if len(flagged) < query.limit:
            flags = [name for name, off in (("price", price_off), ("units", units_off)) if off]
            flagged.append(
                {
                    **{k: row[k] for k in ("id", "team_id", "request_id", "key_id", "outcome")},
                    **{k: row[k] for k in ("endpoint", "day", "images", "megapixels")},
                    "list_cost_micros": int(list_cost),
                    "charged_micros": row["cost_micros"],
                    "billable_units": units_text(units),
                    "expected_units": expected,
                    "fal_cost_micros": fal_cost,
                    "price_ratio": price_ratio,
                    "units_ratio": units_ratio,
                    "flags": flags,
                }
            )
    return {
        "tolerance": str(tolerance),
        "rows": [t.row(day, ep, tolerance) for (day, ep), t in sorted(totals.items())],
        "flagged_jobs": flagged,
    }
