"""Changing prices (the admin API's and the console's use case): the table's prices, scheduled
or in effect, and a team's own price of an endpoint."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from gateway.catalog import CATALOG
from gateway.catalog.pricing import Price
from gateway.errors import FalError, NotFound
from gateway.policy.cache import store_team_price
from gateway.prices.book import PriceBook, PriceEntry
from gateway.prices.cache import PriceCache, read_book
from gateway.prices.model import PriceSet, PriceTerms
from gateway.store.multiplexed import Store
from gateway.store.price_scripts import PriceScripts


class PriceTable:
    def __init__(self, scripts: PriceScripts, store: Store, redis: Redis, cache: PriceCache):
        self._scripts = scripts
        self._store = store
        self._redis = redis
        self._cache = cache

    async def book(self) -> PriceBook:
        """The table as it stands now (read afresh, not this process's copy)."""
        return await read_book(self._store)

    def now(self) -> float:
        return self._cache.now()

    async def listing(self) -> dict[str, Any]:
        """Every endpoint's catalog, current, scheduled and superseded prices."""
        book = await self.book()
        return {"version": book.version, "endpoints": book.listing(self.now())}

    async def entry(self, version: int) -> dict[str, Any]:
        book = await self.book()
        found = book.find(version)
        if found is None:
            raise NotFound("Price not found")
        return found.public(book.state(found, self.now()))

    async def set(self, change: PriceSet) -> dict[str, Any]:
        """Add ``change`` to the table: it applies from the next submit in every process (or
        from its ``effective_at``)."""
        data = change.model_dump(mode="json", exclude={"effective_at"})
        if change.effective_at is not None:
            data["effective_at"] = change.effective_at.timestamp()
        entry = PriceEntry.stored(await self._scripts.set(json.dumps(data)))
        book = await self._cache.refresh()
        # Redis's clock set it, and this process's idea of that clock may lag a little.
        return entry.public(book.state(entry, max(self.now(), entry.created_at)))

    async def cancel(self, version: int) -> None:
        """Remove a scheduled price before it takes effect."""
        outcome = await self._scripts.cancel(version)
        if outcome == "missing":
            raise NotFound("Price not found")
        if outcome == "in_effect":
            raise FalError(
                "This price is or was in effect; set a new one instead",
                status_code=409,
                error_type="conflict",
            )
        await self._cache.refresh()

    async def set_team_price(self, team_id: str, endpoint_id: str, price: PriceTerms) -> Price:
        """Give a team its own price of an endpoint (numbered by the table's versions)."""
        own = price.price(await self._scripts.next_version())
        await store_team_price(self._redis, team_id, endpoint_id, own)
        return own

    async def clear_team_price(self, team_id: str, endpoint_id: str) -> None:
        """Let the team pay the table's price of the endpoint again."""
        await store_team_price(self._redis, team_id, endpoint_id, None)


def team_listing(book: PriceBook, own: dict[str, Price], at: float) -> list[dict[str, Any]]:
    """What a team pays per endpoint before its multiplier: its own price or the table's."""
    shown = []
    for endpoint in CATALOG.values():
        price = book.price(endpoint, at, own)
        source = "team" if endpoint.id in own else "table" if price.version else "catalog"
        shown.append(
            {"endpoint": endpoint.id, "version": price.version, **price.terms(), "source": source}
        )
    return shown
