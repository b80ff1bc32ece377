"""The price table's scripts, as typed methods (``lua/price_set.lua``, ``price_cancel``). Both
keys are ``redis_keys.PRICE_*``: the ``{prices}`` hash tag, one slot on Redis Cluster."""

from __future__ import annotations

from gateway.store import redis_keys
from gateway.store.multiplexed import Store
from gateway.store.pool import store_errors
from gateway.store.scripts import Scripts

TABLE_KEYS = (redis_keys.PRICE_TABLE, redis_keys.PRICE_VERSION)


class PriceScripts:
    def __init__(self, scripts: Scripts, store: Store) -> None:
        self._scripts = scripts
        self._store = store

    async def set(self, entry_json: str) -> str:
        """Add a price (JSON: endpoint, terms, ``effective_at`` when scheduled) under a new
        version of the table; the entry as stored, version and times included."""
        reply = await self._scripts.run("price_set", keys=TABLE_KEYS, args=[entry_json])
        return str(reply[1])

    async def cancel(self, version: int) -> str:
        """Remove a scheduled price: ``cancelled``, ``missing`` or ``in_effect`` (kept)."""
        reply = await self._scripts.run("price_cancel", keys=TABLE_KEYS, args=[version])
        return str(reply[0])

    async def next_version(self) -> int:
        """A new version of the table (numbering a team's own price)."""
        async with store_errors():
            return int(await self._store.call("INCR", redis_keys.PRICE_VERSION))
