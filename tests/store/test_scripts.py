"""The Lua scripts driven directly against a real Redis: admission, the finisher, credit.

Milliseconds each; the fleet tests (tests/limits) keep what needs gateway processes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.settings import Settings
from gateway.store import redis_keys
from gateway.store.multiplexed import hash_reply
from gateway.store.retention import Retention
from gateway.store.script_values import Admission, Admitted, Ending, Refused
from gateway.store.scripts import BalanceOutOfRange, Scripts
from gateway.telemetry.metrics import Metrics
from tests.servers import RedisServer
from tests.store.slots import SlotCheckedStore

SECRET_HASH = "ab" * 32
ENDPOINT = "fal-ai/flux-lora/inpainting"
METRICS = Metrics()
RETENTION = Retention.of(Settings.model_construct())
"""The default settings' (read without the environment)."""


class Scene:
    """A team with one key, funded, on the real Redis; ids unique to the test."""

    def __init__(self, store: SlotCheckedStore, scripts: Scripts) -> None:
        self.store = store
        self.scripts = scripts
        self.team = f"t-{os.urandom(4).hex()}"
        self.key = os.urandom(6).hex()

    async def setup(self, key_fields: dict[str, str | int] | None = None) -> None:
        key: dict[str, str | int] = {
            "secret_hash": SECRET_HASH,
            "status": "active",
            "expires_at": "",
            "spent": 0,
            "reserved": 0,
            "policy_version": 0,
            **(key_fields or {}),
        }
        team: dict[str, str | int] = {
            "balance": 1_000_000,
            "reserved": 0,
            "multiplier_ppm": 1_000_000,
        }
        await self.store.execute(
            [
                ("HSET", redis_keys.key_record(self.team, self.key), *_flat(key)),
                ("HSET", redis_keys.team_record(self.team), *_flat(team)),
            ]
        )

    async def admit(
        self, estimate: int, reservation: str | None = None, price: str = ""
    ) -> Admitted | Refused:
        return await self.scripts.admit(
            Admission(
                team_id=self.team,
                key_id=self.key,
                secret_hash=SECRET_HASH,
                estimate_micros=estimate,
                reservation_id=reservation or os.urandom(8).hex(),
                endpoint_id=ENDPOINT,
                key_policy_version=0,
                team_policy_version=0,
                lease_ttl=60,
                reservation_ttl=3600,
                price=price,
            )
        )

    async def bind(self, reservation: str, request_id: str) -> None:
        record = redis_keys.request_record(self.team, request_id)
        await self.store.execute(
            [
                ("HSET", record, "key_id", self.key, "settled", "0"),
                ("EXPIRE", record, 3600),
                ("HSET", redis_keys.reservation(self.team, reservation), "request_id", request_id),
            ]
        )

    def ending(self, reservation: str, request_id: str, **fields: Any) -> Ending:
        return Ending(
            team_id=self.team,
            key_id=self.key,
            reservation_id=reservation,
            request_id=request_id,
            **{"outcome": "charged", **fields},
        )

    async def team_fields(self) -> dict[str, str]:
        return hash_reply(await self.store.call("HGETALL", redis_keys.team_record(self.team)))

    async def hget(self, name: str, field: str) -> Any:
        return await self.store.call("HGET", name, field)

    @property
    def queue(self) -> str:
        """The team's shard of the delivery queue."""
        return redis_keys.delivery_stream(redis_keys.shard_of(self.team))


def _flat(fields: dict[str, str | int]) -> list[str | int]:
    return [item for pair in fields.items() for item in pair]


def run(
    redis_server: RedisServer, body: Callable[[Scene], Awaitable[None]], alert_url: str = ""
) -> None:
    async def main() -> None:
        store = SlotCheckedStore(redis_server.url, 2.0)
        try:
            scene = Scene(store, Scripts(store, METRICS, RETENTION, alert_url))
            await scene.setup()
            await body(scene)
        finally:
            await store.aclose()

    asyncio.run(main())


def test_admit_reserves_credit_and_a_lease(redis_server: RedisServer) -> None:
    async def body(s: Scene) -> None:
        admitted = await s.admit(40_000, "r1")
        assert admitted == Admitted(40_000, 0, -1, 0)
        team = await s.team_fields()
        assert (team["balance"], team["reserved"]) == ("1000000", "40000")
        reservation = hash_reply(
            await s.store.call("HGETALL", redis_keys.reservation(s.team, "r1"))
        )
        assert reservation["state"] == "open"
        assert reservation["cost"] == "40000"
        leases = redis_keys.leases(s.team, s.key)
        assert await s.store.call("ZRANGE", leases, 0, -1) == ["r1"]

    run(redis_server, body)


@pytest.mark.parametrize(
    ("key_fields", "estimate", "reason"),
    [
        ({}, 2_000_000, "insufficient_credit"),
        ({"secret_hash": "cd" * 32}, 1, "invalid_key"),
        ({"status": "revoked"}, 1, "invalid_key"),
        ({"policy_version": 3}, 1, "stale_policy"),
        ({"spend_cap": 10}, 11, "key_spend_cap"),
    ],
)
def test_admit_refuses_and_changes_nothing(
    redis_server: RedisServer, key_fields: dict[str, str | int], estimate: int, reason: str
) -> None:
    async def body(s: Scene) -> None:
        await s.setup(key_fields)
        refused = await s.admit(estimate)
        assert isinstance(refused, Refused)
        assert refused.reason == reason
        team = await s.team_fields()
        assert (team["balance"], team["reserved"]) == ("1000000", "0")
        assert await s.store.call("EXISTS", redis_keys.leases(s.team, s.key)) == 0

    run(redis_server, body)


def test_admit_holds_a_key_to_its_concurrency_and_rate(redis_server: RedisServer) -> None:
    async def body(s: Scene) -> None:
        await s.setup({"max_concurrent": 2, "rate_per_minute": 60, "rate_burst": 3})
        results = [await s.admit(1) for _ in range(3)]
        assert [type(r) for r in results] == [Admitted, Admitted, Refused]
        assert isinstance(results[2], Refused)
        assert results[2].reason == "concurrency"
        await s.setup({"max_concurrent": 0, "rate_per_minute": 60, "rate_burst": 3})
        third, fourth = await s.admit(1), await s.admit(1)
        assert isinstance(third, Admitted)
        assert isinstance(fourth, Refused)
        assert fourth.reason == "rate_key"
        assert 0 < fourth.retry_after_ms <= 1000

    run(redis_server, body)


def test_finish_charges_keeps_the_status_and_queues_the_webhook_once(
    redis_server: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        await s.admit(40_000, "r1")
        await s.bind("r1", "req-1")
        stream_before = await s.store.call("XLEN", s.queue)
        ending = s.ending(
            "r1",
            "req-1",
            list_cost=30_000,
            images=1,
            pixels=1_000_000,
            final_status='{"status":"COMPLETED"}',
            webhook_url="https://example.com/hook",
            webhook_body='{"status":"OK"}',
        )
        first = await s.scripts.finish(ending)
        assert (first.settlement, first.charged, first.delivery) == ("settled", 30_000, "new")
        again = await s.scripts.finish(ending)
        assert (again.settlement, again.charged, again.delivery) == ("already", 30_000, "duplicate")

        team = await s.team_fields()
        assert (team["balance"], team["reserved"]) == ("970000", "0")
        record = redis_keys.request_record(s.team, "req-1")
        assert await s.hget(record, "final_status") == '{"status":"COMPLETED"}'
        assert await s.hget(record, "settled") == "1"
        delivery = hash_reply(await s.store.call("HGETALL", redis_keys.delivery(s.team, "req-1")))
        assert delivery["url"] == "https://example.com/hook"
        assert delivery["status"] == "pending"
        assert await s.store.call("XLEN", s.queue) == stream_before + 1
        ledger = await s.store.call("XRANGE", redis_keys.ledger(s.team), "-", "+")
        assert len(ledger) == 1
        assert await s.store.call("ZCARD", redis_keys.leases(s.team, s.key)) == 0

    run(redis_server, body)


def test_finish_refunds_without_a_ledger_entry(redis_server: RedisServer) -> None:
    async def body(s: Scene) -> None:
        await s.admit(40_000, "r1")
        finished = await s.scripts.finish(s.ending("r1", "", outcome="refused"))
        assert (finished.settlement, finished.charged, finished.delivery) == ("settled", 0, "none")
        team = await s.team_fields()
        assert (team["balance"], team["reserved"]) == ("1000000", "0")
        assert await s.store.call("XLEN", redis_keys.ledger(s.team)) == 0

    run(redis_server, body)


def test_finish_charges_the_estimate_when_the_output_does_not_say(
    redis_server: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        await s.admit(40_000, "r1")
        finished = await s.scripts.finish(s.ending("r1", "", list_cost=-1))
        assert finished.charged == 40_000

    run(redis_server, body)


def test_finish_never_charges_more_than_the_reservation(redis_server: RedisServer) -> None:
    """Admission checked the balance and caps against the reservation: a larger actual cost is
    reported as an overrun, not charged."""

    async def body(s: Scene) -> None:
        await s.admit(900_000, "r1")
        finished = await s.scripts.finish(s.ending("r1", "", list_cost=4_000_000))
        assert (finished.charged, finished.overrun) == (900_000, 3_100_000)
        team = await s.team_fields()
        assert (team["balance"], team["reserved"]) == ("100000", "0")
        key = redis_keys.key_record(s.team, s.key)
        assert await s.hget(key, "spent") == "900000"
        (entry,) = await s.store.call("XRANGE", redis_keys.usage_log(s.team), "-", "+")
        logged = hash_reply(entry[1])
        assert (logged["cost_micros"], logged["overrun_micros"]) == ("900000", "3100000")

    run(redis_server, body)


def test_finish_keeps_the_first_final_status_and_never_revives_an_expired_record(
    redis_server: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        await s.admit(1, "r1")
        await s.bind("r1", "req-1")
        await s.scripts.finish(s.ending("r1", "req-1", final_status='{"first":1}'))
        await s.scripts.finish(s.ending("r1", "req-1", final_status='{"second":2}'))
        record = redis_keys.request_record(s.team, "req-1")
        assert await s.hget(record, "final_status") == '{"first":1}'

        await s.admit(1, "r2")
        await s.scripts.finish(s.ending("r2", "req-gone", final_status='{"status":"COMPLETED"}'))
        gone = redis_keys.request_record(s.team, "req-gone")
        assert await s.store.call("EXISTS", gone) == 0

    run(redis_server, body)


def test_finish_of_an_expired_reservation_still_relays(redis_server: RedisServer) -> None:
    async def body(s: Scene) -> None:
        ending = s.ending("never-admitted", "req-9", webhook_url="https://example.com/h")
        finished = await s.scripts.finish(ending)
        assert (finished.settlement, finished.delivery) == ("missing", "new")
        team = await s.team_fields()
        assert team["balance"] == "1000000"

    run(redis_server, body)


def test_racing_finishers_settle_and_queue_exactly_once() -> None:
    async def body(s: Scene) -> None:
        await s.admit(40_000, "r1")
        await s.bind("r1", "req-1")
        stream_before = await s.store.call("XLEN", s.queue)
        ending = s.ending(
            "r1", "req-1", list_cost=25_000, webhook_url="https://example.com/h", webhook_body="{}"
        )
        results = await asyncio.gather(*(s.scripts.finish(ending) for _ in range(50)))
        assert sum(r.settlement == "settled" for r in results) == 1
        assert sum(r.delivery == "new" for r in results) == 1
        team = await s.team_fields()
        assert (team["balance"], team["reserved"]) == ("975000", "0")
        assert await s.store.call("XLEN", s.queue) == stream_before + 1

    # Its own Redis: a gateway's delivery worker on the shared one would take the entry.
    with RedisServer() as own:
        run(own, body)


def test_credit_changes_the_balance_with_its_ledger_entry(redis_server: RedisServer) -> None:
    async def body(s: Scene) -> None:
        balance, entry = await s.scripts.credit(s.team, -250, "correction", LIMIT) or (0, "")
        assert balance == 999_750
        ledger = await s.store.call("XRANGE", redis_keys.ledger(s.team), "-", "+")
        assert ledger[0][0] == entry
        assert await s.scripts.credit("no-such-team", 5, "", LIMIT) is None
        assert await s.store.call("EXISTS", redis_keys.team_record("no-such-team")) == 0

    run(redis_server, body)


LIMIT = 10**15


def test_credit_never_takes_a_balance_past_the_limit(redis_server: RedisServer) -> None:
    """Checked in the script, so racing credits cannot pass it together."""

    async def body(s: Scene) -> None:
        step = LIMIT // 4
        results = await asyncio.gather(
            *(s.scripts.credit(s.team, step, "race", LIMIT) for _ in range(8)),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, BalanceOutOfRange)]
        assert len(refused) == 5  # the team starts with 1_000_000: three steps fit
        team = await s.team_fields()
        assert int(team["balance"]) == 1_000_000 + 3 * step
        assert await s.store.call("XLEN", redis_keys.ledger(s.team)) == 3
        # Back towards zero is always allowed.
        assert await s.scripts.credit(s.team, -step, "back", LIMIT) is not None

    run(redis_server, body)
