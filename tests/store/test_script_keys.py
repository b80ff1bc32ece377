"""What Redis Cluster requires of every script, checked on one Redis over a flow that runs each
of them: the keys a script is passed share one slot, and it touches no other key (its team's
usage hash of another day included)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from gateway.store import redis_keys
from gateway.store.account_scripts import AccountScripts, Chosen
from gateway.store.price_scripts import PriceScripts
from gateway.store.scripts import NAMES
from tests.servers import RedisServer
from tests.store.slots import Monitor
from tests.store.test_scripts import Scene, run


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


async def _every_script(s: Scene) -> None:
    alerting = ("low_balance", 10**7, "alert_url", "https://example.com/a")
    await s.store.call("HSET", redis_keys.team_record(s.team), *alerting)
    await s.store.call(
        "HSET", redis_keys.team_record(s.team), "near_cap_pct", 1, "daily_cap", 10**5
    )
    await s.admit(40_000, "r1")
    await s.bind("r1", "req-1")
    assert await s.scripts.job_seen(s.team, "req-1", "started_ms")
    assert not await s.scripts.job_seen(s.team, "req-1", "started_ms")  # the first sighting stays
    assert not await s.scripts.job_seen(
        s.team, "req-gone", "started_ms"
    )  # nor is a record made anew
    hook = {"webhook_url": "https://example.com/h", "webhook_body": "{}"}
    await s.scripts.finish(s.ending("r1", "req-1", list_cost=1_000, **hook))
    await s.admit(40_000, "r2")  # admitted "yesterday": its usage goes to that day's hash
    await s.store.call("HSET", redis_keys.reservation(s.team, "r2"), "day", "2001-02-03")
    await s.scripts.finish(s.ending("r2", "", list_cost=1_000))
    await s.scripts.credit(s.team, 10**8, "note", 10**15)  # re-arms the low-balance alert
    await s.scripts.credit(s.team, -(10**8), "note", 10**15)  # and raises it again
    retries = redis_keys.delivery_retries(redis_keys.shard_of(s.team))
    await s.store.call("ZADD", retries, 0, f"{s.team} req-1")
    assert await s.scripts.promote_retries(10) == 1
    now, claimed = await s.scripts.claim_due_teams(range(redis_keys.SHARDS), -3600, 30, 10)
    assert claimed[redis_keys.shard_of(s.team)] == [s.team]
    await s.scripts.release_teams({s.team: now})
    lock = redis_keys.delivery_lock(s.team, "req-1")
    await s.store.call("SET", lock, "token")
    assert await s.scripts.unlock(lock, "token")
    legacy = [redis_keys.LEGACY_DELIVERY_STREAM, redis_keys.LEGACY_DELIVERY_RETRIES]
    await s.store.call("ZADD", legacy[1], 1, "t d")
    assert await s.scripts.forget_moved(legacy, [(1, "t d")]) == 0
    pool = AccountScripts(s.scripts, 60, 30, failures_alert=2)
    account = {"key": "sealed", "fingerprint": "f", "weight": 1, "enabled": True}
    assert (await pool.edit("create", "a", json.dumps(account))).outcome == "created"
    assert await pool.pick("r9", ()) == Chosen("a", "sealed")
    assert await pool.health("cooling", "a", "f", "1")
    assert await pool.health("refused", "a", "f", "locked")
    assert await pool.release("a", "r9")
    await pool.count_failures(_today(), {"a": 2, "b": 1})
    undelivered = await s.store.call("ZCARD", redis_keys.undelivered(redis_keys.UPSTREAM_ALERTS))
    assert undelivered == 3  # the account cooling, disabled, then failing calls
    # req-1's webhook, low balance (operator and team) twice, near the daily cap (operator)
    assert await s.store.call("ZCARD", redis_keys.undelivered(s.team)) == 6
    assert (await pool.edit("delete", "a")).outcome == "deleted"
    await s.admit(40_000, "r3")
    assert await s.scripts.take_back(s.team, s.key, "r3")
    prices = PriceScripts(s.scripts, s.store)
    later = {"endpoint": "e", "per_megapixel_micros": 1, "effective_at": time.time() + 3600}
    scheduled = json.loads(await prices.set(json.dumps(later)))
    assert await prices.cancel(scheduled["version"]) == "cancelled"


def test_every_script_touches_only_the_keys_it_is_passed_all_in_one_slot() -> None:
    with RedisServer() as own, Monitor(own) as monitor:
        ran: set[str] = set()
        usage: list[str] = []

        async def body(s: Scene) -> None:
            await _every_script(s)
            ran.update(s.store.scripts_run)  # each run checked for keys of one slot
            usage.extend(await s.store.call("KEYS", "*:usage:day:*"))

        run(own, body, alert_url="https://example.com/operator")
    runs = monitor.script_runs()
    assert len(ran) == len(NAMES), "a script of NAMES never ran in the flow"
    assert len(runs) >= len(NAMES)
    assert sum(len(r.commands) for r in runs) > 50  # the monitor saw what the scripts did
    assert [(r.keys, r.undeclared()) for r in runs if r.undeclared()] == []
    # The finish of the reservation admitted on another day found that day's hash.
    assert sorted(name.rsplit(":", 1)[1] for name in usage) == ["2001-02-03", _today()]
