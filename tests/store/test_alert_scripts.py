"""Alerts raised by the scripts, driven directly against a real Redis: once per crossing of a
team's thresholds (``finish.lua``, ``credit.lua``) and per change of a fal account's health
(``account_health.lua``, ``count_failures.lua``), recorded as deliveries in the same script."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from gateway.store import redis_keys
from gateway.store.account_scripts import AccountScripts
from gateway.store.multiplexed import hash_reply
from tests.servers import RedisServer
from tests.store.test_scripts import METRICS, Scene, run

OPERATOR = "https://alerts.example.com/hook"
UPSTREAMS = redis_keys.UPSTREAM_ALERTS


async def _alerts(s: Scene, owner: str) -> list[dict[str, Any]]:
    """``owner``'s alert deliveries, with their body read (by balance, for a team's)."""
    ids = await s.store.call("ZRANGE", redis_keys.undelivered(owner), 0, -1)
    found = []
    for delivery_id in ids:
        fields = hash_reply(await s.store.call("HGETALL", redis_keys.delivery(owner, delivery_id)))
        if fields.get("kind"):
            found.append({**fields, "id": delivery_id, "body": json.loads(fields["body"])})
    return sorted(found, key=lambda d: (d["body"].get("balance_micros", 0), d["signer"]))


async def _spend(s: Scene, cost: int, reservation: str) -> None:
    await s.admit(cost, reservation)
    await s.scripts.finish(s.ending(reservation, "", list_cost=cost))


def _raised(kind: str) -> float:
    value = METRICS.registry.get_sample_value("gateway_alerts_total", {"type": kind})
    return value or 0.0


def test_a_low_balance_alerts_once_per_crossing_and_a_credit_rearms_it(
    redis_server: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        await s.store.call("HSET", redis_keys.team_record(s.team), "low_balance", 700_000)
        raised = _raised("team.low_balance")
        for n in range(5):  # 1,000,000 down to 500,000: crosses 700,000 once
            await _spend(s, 100_000, f"r{n}")
        [alert] = await _alerts(s, s.team)
        assert alert["url"] == OPERATOR
        assert alert["signer"] == "operator"
        assert alert["status"] == "pending"
        assert alert["key_id"] == ""
        assert alert["body"]["type"] == "team.low_balance"
        assert alert["body"]["team_id"] == s.team
        assert (alert["body"]["balance_micros"], alert["body"]["threshold_micros"]) == (
            600_000,
            700_000,
        )
        assert "below its low-balance threshold" in alert["body"]["message"]
        assert datetime.fromisoformat(alert["body"]["time"]).tzinfo == UTC
        # Queued on the team's shard in the round trip after the script.
        entries = await s.store.call("XRANGE", s.queue, "-", "+")
        assert alert["id"] in [hash_reply(e[1])["delivery_id"] for e in entries]
        assert _raised("team.low_balance") == raised + 1

        await s.scripts.credit(s.team, 100_000, "still below", 10**15)
        assert len(await _alerts(s, s.team)) == 1
        await s.scripts.credit(s.team, 300_000, "back above", 10**15)  # 900,000: re-armed
        assert "low_alerted" not in await s.team_fields()
        await s.scripts.credit(s.team, -250_000, "a debit crosses too", 10**15)
        alerts = await _alerts(s, s.team)
        assert [a["body"]["balance_micros"] for a in alerts] == [600_000, 650_000]
        assert _raised("team.low_balance") == raised + 2

    run(redis_server, body, alert_url=OPERATOR)


def test_a_team_with_its_own_webhook_gets_its_low_balance_alert_signed_with_its_secret(
    redis_server: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        fields = ("low_balance", 950_000, "alert_url", "https://team.example.com/low")
        await s.store.call("HSET", redis_keys.team_record(s.team), *fields)
        await _spend(s, 100_000, "r1")
        [operator, team] = await _alerts(s, s.team)
        assert (operator["url"], operator["signer"]) == (OPERATOR, "operator")
        assert (team["url"], team["signer"]) == ("https://team.example.com/low", "team")
        assert team["body"] == operator["body"]

    run(redis_server, body, alert_url=OPERATOR)


def test_without_an_operator_webhook_the_crossing_is_counted_and_flagged_only(
    redis_server: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        await s.store.call("HSET", redis_keys.team_record(s.team), "low_balance", 950_000)
        raised = _raised("team.low_balance")
        await _spend(s, 100_000, "r1")
        assert await _alerts(s, s.team) == []
        assert (await s.team_fields())["low_alerted"] == "1"
        assert _raised("team.low_balance") == raised + 1

    run(redis_server, body)


def test_near_a_cap_alerts_once_per_period(redis_server: RedisServer) -> None:
    async def body(s: Scene) -> None:
        caps = ("near_cap_pct", 80, "daily_cap", 500_000, "monthly_cap", 10**9)
        await s.store.call("HSET", redis_keys.team_record(s.team), *caps)
        for n in range(4):  # 400,000 of 500,000 after the fourth
            await _spend(s, 100_000, f"r{n}")
        [alert] = await _alerts(s, s.team)
        assert alert["body"]["type"] == "team.near_cap"
        assert alert["body"]["period"] == "day"
        assert (alert["body"]["spent_micros"], alert["body"]["cap_micros"]) == (400_000, 500_000)
        assert alert["body"]["percent"] == 80
        await _spend(s, 50_000, "r9")
        assert len(await _alerts(s, s.team)) == 1
        today = datetime.now(UTC).date().isoformat()
        assert (await s.team_fields())["near_day"] == today

    run(redis_server, body, alert_url=OPERATOR)


def test_an_account_alerts_once_when_refused_and_when_it_starts_cooling(
    redis_server: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        pool = AccountScripts(s.scripts, 60, 30)
        name = f"acct-{s.team}"
        account = {"key": "sealed", "fingerprint": "f", "weight": 1, "enabled": True}
        assert (await pool.edit("create", name, json.dumps(account))).outcome == "created"
        now = datetime.now(UTC).timestamp()
        assert await pool.health("cooling", name, "f", f"{now + 30:.3f}")
        assert await pool.health("cooling", name, "f", f"{now + 60:.3f}")  # longer: no alert
        assert await pool.health("refused", name, "f", "User is locked")
        assert await pool.health("refused", name, "f", "Exhausted balance")  # still refused
        assert await pool.health("restored", name, "f", "")
        mine = [a for a in await _alerts(s, UPSTREAMS) if a["body"]["account"] == name]
        assert sorted((a["body"]["type"], a["body"]["reason"]) for a in mine) == [
            ("upstream.disabled", "User is locked"),
            ("upstream.failing", "fal answered 429"),
        ]
        assert all(a["team_id"] == UPSTREAMS and a["signer"] == "operator" for a in mine)
        assert "sealed" not in json.dumps([a["body"] for a in mine])
        await pool.edit("delete", name)

    run(redis_server, body, alert_url=OPERATOR)


def test_failed_calls_alert_once_a_window_when_they_reach_the_threshold(
    redis_server: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        pool = AccountScripts(s.scripts, 60, 30, failures_alert=5, failures_window=3600)
        name = f"acct-{s.team}"
        today = datetime.now(UTC).date().isoformat()
        await pool.count_failures(today, {name: 3})
        await pool.count_failures(today, {name: 3, f"{name}-other": 1})
        await pool.count_failures(today, {name: 3})
        mine = [a for a in await _alerts(s, UPSTREAMS) if a["body"]["account"] == name]
        assert [(a["body"]["type"], a["body"]["failed_calls"]) for a in mine] == [
            ("upstream.failing", 6)
        ]
        counts = hash_reply(await s.store.call("HGETALL", redis_keys.upstream_failures(today)))
        assert counts[name] == "9"

    run(redis_server, body, alert_url=OPERATOR)
