"""The price table's scripts, the price an admission keeps, and taking an admission back, driven
directly against a real Redis."""

from __future__ import annotations

import json
import time

from gateway.catalog.pricing import Price
from gateway.store import redis_keys
from gateway.store.multiplexed import hash_reply
from gateway.store.price_scripts import PriceScripts
from gateway.store.scripts import Admitted, Refused
from tests.servers import RedisServer
from tests.store.test_scripts import Scene, run

PRICE = Price(40_000, 5, 7, version=12)


def _entry(**fields: object) -> str:
    """A price of an endpoint the catalog does not serve: the Redis is shared with gateways of
    other tests, whose prices it must not change."""
    return json.dumps({"endpoint": "test/not-served", "per_megapixel_micros": 1, **fields})


def test_a_reservation_keeps_its_price_and_the_usage_record_names_its_version(
    redis_server: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        await s.admit(40_000, "r1", PRICE.encode())
        reservation = redis_keys.reservation(s.team, "r1")
        assert Price.decode(await s.hget(reservation, "price")) == PRICE
        await s.bind("r1", "req-1")
        await s.scripts.finish(s.ending("r1", "req-1", list_cost=30_000))
        [(_, fields)] = await s.store.call("XRANGE", redis_keys.usage_log(s.team), "-", "+")
        logged = hash_reply(fields)
        assert (logged["price_version"], logged["cost_micros"]) == ("12", "30000")

    run(redis_server, body)


def test_an_admission_reads_the_price_table_version_and_redis_clock(
    redis_server: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        prices = PriceScripts(s.scripts, s.store)
        before = await s.admit(1)
        version = json.loads(await prices.set(_entry()))["version"]
        after = await s.admit(1_000_000)  # refused: the reading comes with refusals too
        assert isinstance(before, Admitted)
        assert isinstance(after, Refused)
        assert after.prices.table_version == version == before.prices.table_version + 1
        (seconds, micros) = await s.store.call("TIME")
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        assert now_ms - 1000 < after.prices.redis_ms <= now_ms

    run(redis_server, body)


def test_take_back_undoes_an_admission_rate_slots_included(redis_server: RedisServer) -> None:
    async def body(s: Scene) -> None:
        await s.setup({"rate_per_minute": 1, "rate_burst": 1, "max_concurrent": 1})
        await s.store.call("HSET", redis_keys.team_record(s.team), "rate_per_minute", 1)
        first = await s.admit(40_000, "r1")
        assert isinstance(first, Admitted)
        assert isinstance(await s.admit(40_000), Refused)  # rate and concurrency both full
        assert await s.scripts.take_back(s.team, s.key, "r1")
        assert not await s.scripts.take_back(s.team, s.key, "r1")  # once only
        team = await s.team_fields()
        assert (team["balance"], team["reserved"]) == ("1000000", "0")
        key = redis_keys.key_record(s.team, s.key)
        assert await s.hget(key, "reserved") == "0"
        assert set(
            hash_reply(await s.store.call("HGETALL", redis_keys.spend(s.team))).values()
        ) == {"0"}
        for name in (redis_keys.reservation(s.team, "r1"), redis_keys.leases(s.team, s.key)):
            assert await s.store.call("EXISTS", name) == 0
        assert await s.store.call("ZCARD", redis_keys.open_reservations(s.team)) == 0
        assert isinstance(await s.admit(40_000, "r2"), Admitted)  # its slots were given back

    run(redis_server, body)


def test_a_price_takes_effect_now_by_redis_clock_or_when_scheduled(
    redis_server: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        prices = PriceScripts(s.scripts, s.store)
        (seconds, _) = await s.store.call("TIME")
        now = json.loads(await prices.set(_entry(note="fal's new price")))
        assert int(seconds) <= now["effective_at"] == now["created_at"] < int(seconds) + 2
        assert now["note"] == "fal's new price"
        later = json.loads(await prices.set(_entry(effective_at=time.time() + 3600)))
        assert later["version"] == now["version"] + 1
        assert await prices.cancel(now["version"]) == "in_effect"
        assert await prices.cancel(later["version"]) == "cancelled"
        assert await prices.cancel(later["version"]) == "missing"
        table = hash_reply(await s.store.call("HGETALL", redis_keys.PRICE_TABLE))
        assert str(later["version"]) not in table
        assert str(now["version"]) in table
        # Cancelling moves the version on too: cached copies must see the table changed.
        assert int(await s.store.call("GET", redis_keys.PRICE_VERSION)) == later["version"] + 1

    run(redis_server, body)
