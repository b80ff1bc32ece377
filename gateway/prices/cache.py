"""Per-process copy of the price table, so that pricing a submit costs no round trip.

Pricing comes before admission (the estimate is what admission reserves), so each process keeps
the table. Every change of it moves its version on (``redis_keys.PRICE_VERSION``). Each
admission reads that version and Redis's clock in its own round trip (``Scripts.admit``), and
``confirm`` checks the price the estimate was made at against the table as it then stood: when
the version has moved on, the table is read again (once per change per process); when the price
that applied is not the one used (it changed, or a scheduled price took effect by Redis's
clock), the admitter takes the admission back and the submit is priced again. A change thus
applies to the very next submit in every process, at no round trip more per submit. Scheduled
prices are chosen by Redis's clock, which the cache follows from each admission's reading.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from gateway.catalog import Endpoint
from gateway.catalog.pricing import Price
from gateway.prices.book import PriceBook, PriceEntry
from gateway.store import redis_keys
from gateway.store.multiplexed import Store, hash_reply
from gateway.store.pool import store_errors
from gateway.store.script_values import PricesSeen


class StalePrice(Exception):
    """The price a submit was admitted at no longer applied; price it again."""


async def read_book(store: Store) -> PriceBook:
    """The price table as it stands (its version read first: a table read after it is at least
    as new, so a copy is never taken for newer than it is)."""
    async with store_errors():
        version, table = await store.execute(
            [("GET", redis_keys.PRICE_VERSION), ("HGETALL", redis_keys.PRICE_TABLE)]
        )
    entries = [PriceEntry.stored(text) for text in hash_reply(table).values()]
    return PriceBook.of(int(version or 0), entries)


class PriceCache:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._book: PriceBook | None = None
        self._offset = 0.0
        """Redis's clock minus this process's (s), as the last admission read it."""
        self._reading = asyncio.Lock()

    def now(self) -> float:
        """The time by Redis's clock, as near as this process knows it."""
        return time.time() + self._offset

    async def price(self, endpoint: Endpoint, overrides: Mapping[str, Price]) -> Price:
        """The price of ``endpoint`` now for a team with ``overrides``."""
        book = self._book or await self.refresh()
        return book.price(endpoint, self.now(), overrides)

    async def confirm(
        self, endpoint: Endpoint, overrides: Mapping[str, Price], used: Price, seen: PricesSeen
    ) -> bool:
        """Whether ``used`` was the price that applied when an admission ran, as ``seen`` in
        its round trip (the table read again first when its version moved on)."""
        at = seen.redis_ms / 1000
        self._offset = at - time.time()
        book = self._book
        if book is None or book.version != seen.table_version:
            book = await self.refresh(seen.table_version)
        return book.price(endpoint, at, overrides) == used

    async def refresh(self, wanted: int | None = None) -> PriceBook:
        """Read the table again, unless another call already read version ``wanted``."""
        async with self._reading:
            if self._book is None or wanted is None or self._book.version != wanted:
                self._book = await read_book(self._store)
            return self._book
