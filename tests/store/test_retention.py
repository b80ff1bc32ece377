"""What the scripts and the outbox write does not live forever: TTLs set on write, streams and
indexes trimmed by retention, the spend hash trimming itself. Driven directly on a real Redis."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from gateway.relay.outbox import Outbox
from gateway.store import redis_keys
from gateway.store.retention import SPEND_FIELDS
from gateway.store.script_calls import WEBHOOK_ON_RESERVATION, Admitted
from tests.servers import RedisServer
from tests.store.test_scripts import RETENTION, Scene, run

DAY = 86400


async def _ttl(s: Scene, name: str) -> int:
    ttl: int = await s.store.call("TTL", name)
    return ttl


async def _old_entries(s: Scene, stream: str, count: int) -> None:
    """``count`` entries from 1970 (older than any retention) at the head of ``stream``."""
    await s.store.execute([("XADD", stream, f"{n + 1}-0", "old", "1") for n in range(count)])


def test_a_new_delivery_its_index_and_team_lookup_expire(redis_server: RedisServer) -> None:
    async def body(s: Scene) -> None:
        await s.admit(1, "r1")
        await s.bind("r1", "req-1")
        index = redis_keys.key_deliveries(s.team, s.key)
        await s.store.call("ZADD", index, 1000, "from-1970")
        ending = s.ending("r1", "req-1", webhook_url="https://example.com/h", webhook_body="{}")
        assert (await s.scripts.finish(ending)).delivery == "new"
        pending = RETENTION.delivery_pending
        assert pending > RETENTION.delivery + DAY  # the retry schedule spans over a day
        for name in (
            redis_keys.delivery(s.team, "req-1"),
            redis_keys.delivery_team("req-1"),
            index,
        ):
            assert pending - 5 <= await _ttl(s, name) <= pending, name
        assert await s.store.call("GET", redis_keys.delivery_team("req-1")) == s.team
        assert await s.store.call("ZRANGE", index, 0, -1) == ["req-1"]

    run(redis_server, body)


def test_a_webhook_on_the_reservation_is_the_one_queued(redis_server: RedisServer) -> None:
    async def body(s: Scene) -> None:
        await s.admit(1, "r1")
        await s.bind("r1", "req-1")
        reservation = redis_keys.reservation(s.team, "r1")
        await s.store.call("HSET", reservation, "webhook_url", "https://example.com/resv")
        ending = s.ending("r1", "req-1", webhook_url=WEBHOOK_ON_RESERVATION, webhook_body="{}")
        assert (await s.scripts.finish(ending)).delivery == "new"
        delivery = redis_keys.delivery(s.team, "req-1")
        assert await s.hget(delivery, "url") == "https://example.com/resv"
        # Without a reservation to read it from, there is nowhere to deliver.
        gone = s.ending("gone", "req-2", webhook_url=WEBHOOK_ON_RESERVATION, webhook_body="{}")
        assert (await s.scripts.finish(gone)).delivery == "none"

    run(redis_server, body)


def test_day_usage_and_spend_expire_and_usage_streams_are_trimmed(
    redis_server: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        ledger, usage_log = redis_keys.ledger(s.team), redis_keys.usage_log(s.team)
        await _old_entries(s, ledger, 300)
        await _old_entries(s, usage_log, 300)
        await s.admit(40_000, "r1")
        await s.scripts.finish(s.ending("r1", "", list_cost=30_000, images=1, pixels=10))
        day = time.strftime("%Y-%m-%d", time.gmtime())
        usage_day = redis_keys.usage_day_prefix(s.team) + day
        assert RETENTION.usage - 5 <= await _ttl(s, usage_day) <= RETENTION.usage
        assert RETENTION.spend - 5 <= await _ttl(s, redis_keys.spend(s.team)) <= RETENTION.spend
        # Trimmed a stream node at a time: of 300 old entries, at most one node's stay.
        for stream in (ledger, usage_log):
            assert await s.store.call("XLEN", stream) <= 101, stream
            newest = await s.store.call("XREVRANGE", stream, "+", "-", "COUNT", 1)
            assert int(newest[0][0].split("-")[0]) > 1000 * (time.time() - 60)

    run(redis_server, body)


def test_a_credit_trims_the_ledger(redis_server: RedisServer) -> None:
    async def body(s: Scene) -> None:
        ledger = redis_keys.ledger(s.team)
        await _old_entries(s, ledger, 300)
        assert await s.scripts.credit(s.team, 5, "top-up", 10**15) is not None
        assert await s.store.call("XLEN", ledger) <= 101

    run(redis_server, body)


def test_the_spend_hash_drops_periods_no_cap_reads(redis_server: RedisServer) -> None:
    async def body(s: Scene) -> None:
        spend = redis_keys.spend(s.team)
        now = time.time()
        recent_days = [time.strftime("d:%Y-%m-%d", time.gmtime(now - n * DAY)) for n in range(60)]
        old_days = [time.strftime("d:%Y-%m-%d", time.gmtime(now - n * DAY)) for n in range(70, 90)]
        this_month = time.strftime("m:%Y-%m", time.gmtime(now))
        old_months = ["m:2001-01", "m:2001-02"]
        fields = [*recent_days, *old_days, this_month, *old_months]
        assert len(fields) > SPEND_FIELDS
        await s.store.call("HSET", spend, *(item for f in fields for item in (f, 1)))
        assert isinstance(await s.admit(1), Admitted)
        kept = set(await s.store.call("HKEYS", spend))
        assert kept == {*recent_days, this_month}
        assert RETENTION.spend - 5 <= await _ttl(s, spend) <= RETENTION.spend
        # Below the field limit nothing is read or dropped.
        await s.store.call("HSET", spend, "d:2001-01-01", 1)
        await s.admit(1)
        assert "d:2001-01-01" in await s.store.call("HKEYS", spend)

    run(redis_server, body)


def test_a_replayed_delivery_is_kept_as_long_as_a_new_one(redis_server: RedisServer) -> None:
    async def body(s: Scene) -> None:
        await s.admit(1, "r1")
        await s.bind("r1", "req-1")
        ending = s.ending("r1", "req-1", webhook_url="https://example.com/h", webhook_body="{}")
        await s.scripts.finish(ending)
        delivery, team = redis_keys.delivery(s.team, "req-1"), redis_keys.delivery_team("req-1")
        index = redis_keys.key_deliveries(s.team, s.key)
        # As the worker leaves it once delivered: kept for the retention only, off the lists.
        await s.store.execute([("EXPIRE", name, 60) for name in (delivery, team, index)])
        undelivered = redis_keys.undelivered(s.team)
        due = redis_keys.reconcile_due(redis_keys.shard_of(s.team))
        await s.store.execute([("DEL", undelivered), ("ZREM", due, s.team)])
        redis = Redis.from_url(redis_server.url, decode_responses=True)
        try:
            outbox = Outbox(redis, RETENTION)
            assert await outbox.team_of("req-1") == s.team
            replayed = await outbox.replay(s.team, "req-1")
            assert replayed is not None
            assert replayed["status"] == "pending"
            assert await outbox.replay(s.team, "no-such-delivery") is None
        finally:
            await redis.aclose()
        pending = RETENTION.delivery_pending
        for name in (delivery, team, index, undelivered):
            assert pending - 5 <= await _ttl(s, name) <= pending, name
        # Queued again, and the reconciler stands behind it should the queue lose it.
        queue = redis_keys.delivery_stream(redis_keys.shard_of(s.team))
        (*_, (_, last)) = await s.store.call("XRANGE", queue, "-", "+")
        assert last == ["team_id", s.team, "delivery_id", "req-1"]
        assert await s.store.call("ZSCORE", undelivered, "req-1") is not None
        assert await s.store.call("ZSCORE", due, s.team) is not None

    run(redis_server, body)
