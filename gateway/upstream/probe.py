"""Bringing back accounts fal refused: each is tried again once per ``upstream_probe_interval``
(by whichever process of the fleet takes the turn), with a call fal refuses to a locked
account but that costs nothing: asking where an upload would go. When fal accepts the key
again (the account was topped up, or unlocked), the account takes jobs again."""

from __future__ import annotations

import logging

from gateway.errors import FalError
from gateway.settings import Settings
from gateway.store import redis_keys
from gateway.store.multiplexed import Store
from gateway.store.pool import store_errors
from gateway.upstream.client import FalUpstream
from gateway.upstream.pool import AccountPool

logger = logging.getLogger(__name__)

PROBE_BODY = b'{"content_type":"text/plain","file_name":"gateway-probe.txt"}'
PROBE_STORAGE = "fal-cdn-v3"


class AccountProbe:
    def __init__(
        self, accounts: AccountPool, upstream: FalUpstream, store: Store, settings: Settings
    ) -> None:
        self._accounts = accounts
        self._upstream = upstream
        self._store = store
        self._interval = max(1, round(settings.upstream_probe_interval))

    async def step(self) -> None:
        """Probe every refused account whose turn is free (one pass of the loop)."""
        for view in self._accounts.views():
            health = view.health
            if not (view.account.enabled and health is not None and health.state == "refused"):
                continue
            name = view.account.name
            async with store_errors():
                turn = await self._store.call(
                    "SET", redis_keys.upstream_probe_turn(name), "1", "NX", "EX", self._interval
                )
            if turn is None:
                continue
            credential = await self._accounts.credential(name)
            try:
                response = await self._upstream.initiate_upload(
                    credential, PROBE_STORAGE, PROBE_BODY
                )
            except FalError as exc:
                logger.warning("probe of upstream account %s failed: %s", name, exc.detail)
                continue
            if response.is_success:
                await self._accounts.restored(credential)
