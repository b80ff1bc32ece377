"""The price table as a process sees it, and which price applies when.

A price set for an endpoint takes effect at its ``effective_at``. The one that applies at a time
is the latest to have taken effect by then (of two taking effect together, the newer version);
before any has, the catalog's (version 0). A team's own price of an endpoint, when it has one,
applies instead of the table's, and the team's multiplier applies on top of either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.accounts.keys import rfc3339
from gateway.catalog import CATALOG, Endpoint
from gateway.catalog.pricing import CATALOG_VERSION, Price

CURRENT, SCHEDULED, SUPERSEDED = "current", "scheduled", "superseded"


@dataclass(frozen=True)
class PriceEntry:
    """One price of the table."""

    endpoint: str
    price: Price
    effective_at: float
    created_at: float
    note: str = ""

    @property
    def version(self) -> int:
        return self.price.version

    @classmethod
    def stored(cls, text: str) -> PriceEntry:
        """The entry ``price_set.lua`` stored."""
        data = json.loads(text)
        price = Price(
            int(data["per_megapixel_micros"]),
            int(data.get("per_image_micros") or 0),
            int(data.get("per_request_micros") or 0),
            int(data["version"]),
        )
        created = float(data["created_at"])
        return cls(
            data["endpoint"], price, float(data["effective_at"]), created, data.get("note", "")
        )

    def public(self, state: str) -> dict[str, Any]:
        return {
            "version": self.version,
            "endpoint": self.endpoint,
            **self.price.terms(),
            "effective_at": rfc3339(self.effective_at),
            "created_at": rfc3339(self.created_at),
            "note": self.note,
            "state": state,
        }


@dataclass(frozen=True)
class PriceBook:
    """Every price of the table at ``version`` of it."""

    version: int
    entries: tuple[PriceEntry, ...]
    """Oldest first by the time they take effect, then by version."""

    @classmethod
    def of(cls, version: int, entries: list[PriceEntry]) -> PriceBook:
        return cls(version, tuple(sorted(entries, key=lambda e: (e.effective_at, e.version))))

    def price(
        self, endpoint: Endpoint, at: float, overrides: Mapping[str, Price] | None = None
    ) -> Price:
        """The price of ``endpoint`` at time ``at`` for a team with ``overrides``."""
        own = (overrides or {}).get(endpoint.id)
        if own is not None:
            return own
        current = self._current(endpoint.id, at)
        return current.price if current else endpoint.catalog_price

    def _current(self, endpoint_id: str, at: float) -> PriceEntry | None:
        found = None
        for entry in self.entries:
            if entry.effective_at > at:
                break
            if entry.endpoint == endpoint_id:
                found = entry
        return found

    def find(self, version: int) -> PriceEntry | None:
        return next((entry for entry in self.entries if entry.version == version), None)

    def state(self, entry: PriceEntry, at: float) -> str:
        if entry.effective_at > at:
            return SCHEDULED
        return CURRENT if self._current(entry.endpoint, at) == entry else SUPERSEDED

    def listing(self, at: float) -> list[dict[str, Any]]:
        """Per endpoint of the catalog: its catalog price, the price in effect at ``at`` (the
        catalog's when none of the table is), the prices scheduled after it and those it
        superseded (newest first)."""
        shown = []
        for endpoint in CATALOG.values():
            current = self._current(endpoint.id, at)
            mine = [entry for entry in self.entries if entry.endpoint == endpoint.id]
            catalog = {"version": CATALOG_VERSION, **endpoint.catalog_price.terms()}
            shown.append(
                {
                    "endpoint": endpoint.id,
                    "catalog": catalog,
                    "current": current.public(CURRENT) if current else catalog,
                    "scheduled": [e.public(SCHEDULED) for e in mine if e.effective_at > at],
                    "superseded": [
                        e.public(SUPERSEDED)
                        for e in reversed(mine)
                        if e.effective_at <= at and e != current
                    ],
                }
            )
        return shown
