"""Failed calls to fal per account (fal unreachable, too slow, a 5xx of its own, a refusal),
for the console and the operator's ``upstream.failing`` alert: counted in each process, added
to Redis's daily and alert-window counts, which every replica shares, at each refresh of the
pool (so a failing fal costs no Redis write per call)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from gateway.errors import StoreUnavailable
from gateway.store import redis_keys
from gateway.store.account_scripts import AccountScripts
from gateway.store.multiplexed import Store, hash_reply
from gateway.store.pool import store_errors


class CallFailures:
    def __init__(self, store: Store, scripts: AccountScripts) -> None:
        self._store = store
        self._scripts = scripts
        self._pending: Counter[str] = Counter()

    def count(self, account: str) -> None:
        """One more failed call on ``account``."""
        self._pending[account] += 1

    async def flush(self) -> None:
        """Add the failures counted since the last flush to today's shared counts (kept when
        Redis is unreachable, for the next flush)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, Counter()
        try:
            await self._scripts.count_failures(datetime.now(UTC).date().isoformat(), pending)
        except StoreUnavailable:
            self._pending.update(pending)

    async def recent(self, days: int) -> dict[str, list[int]]:
        """Each account's failed calls on each of the last ``days`` days, today first."""
        today = datetime.now(UTC).date()
        names = [
            redis_keys.upstream_failures((today - timedelta(days=n)).isoformat())
            for n in range(days)
        ]
        async with store_errors():
            replies = await self._store.execute([("HGETALL", name) for name in names])
        found: dict[str, list[int]] = {}
        for n, reply in enumerate(replies):
            for account, count in hash_reply(reply).items():
                found.setdefault(account, [0] * days)[n] = int(count)
        return found
