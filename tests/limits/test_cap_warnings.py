"""A team nearing its daily or monthly cap: the admission that crosses the warning share is
counted once and logged with the team's id; the team is a metric label only when asked for."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest

from gateway.accounts.tokens import Token
from gateway.limits import admission
from gateway.limits.admission import Admitter
from gateway.policy.cache import Rules
from gateway.policy.model import Policy
from gateway.settings import Settings
from gateway.store import redis_keys
from gateway.store.multiplexed import MultiplexedRedis
from gateway.store.retention import Retention
from gateway.store.scripts import Scripts
from gateway.telemetry.metrics import Metrics
from tests.servers import RedisServer

SECRET = "s3cret"
COST = 100


def _admit_four(redis_server: RedisServer, settings: Settings, metrics: Metrics) -> str:
    """A team with a daily cap of 400 and a monthly one of 1,000 admits four jobs of 100."""
    team, key = f"t-{os.urandom(4).hex()}", os.urandom(6).hex()
    token = Token(team, key, SECRET)
    rules = Rules(Policy(), 0, Policy(), 0, token.secret_hash)

    async def main() -> None:
        store = MultiplexedRedis(redis_server.url, 2.0)
        try:
            key_fields: dict[str, str | int] = {"secret_hash": token.secret_hash}
            key_fields |= {"status": "active", "spent": 0, "reserved": 0, "policy_version": 0}
            team_fields: dict[str, str | int] = {"balance": 10_000, "reserved": 0}
            team_fields |= {"multiplier_ppm": 1_000_000, "daily_cap": 400, "monthly_cap": 1_000}
            await store.execute(
                [
                    ("HSET", redis_keys.key_record(team, key), *_flat(key_fields)),
                    ("HSET", redis_keys.team_record(team), *_flat(team_fields)),
                ]
            )
            scripts = Scripts(store, metrics, Retention.of(settings))
            admitter = Admitter(scripts, settings, metrics)
            for _ in range(4):
                await admitter.admit(token, rules, "fal-ai/flux-lora/inpainting", COST)
        finally:
            await store.aclose()

    asyncio.run(main())
    return team


def _flat(fields: dict[str, str | int]) -> list[str | int]:
    return [item for pair in fields.items() for item in pair]


def _warnings(metrics: Metrics, cap: str, team: str = "") -> float | None:
    return metrics.registry.get_sample_value(
        "gateway_team_cap_warnings_total", {"cap": cap, "team": team}
    )


def test_crossing_the_warning_share_of_a_cap_is_counted_once_and_logged(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    settings = Settings.model_construct(cap_warning_ratio=0.7)
    with caplog.at_level(logging.WARNING, logger=admission.__name__):
        team = _admit_four(redis_server, settings, metrics)
    # Daily: 100, 200 (below 280), 300 (crossed), 400 (already past): one warning.
    assert _warnings(metrics, "daily") == 1
    # Monthly: 400 of 1,000 never reaches 700.
    assert _warnings(metrics, "monthly") is None
    [record] = caplog.records
    assert record.getMessage() == (
        f"team {team} has spent 300 of its daily cap of 400 micros (75%)"
    )
    assert _warnings(metrics, "daily", team) is None  # no per-team series unless asked for


def test_the_team_labels_the_warnings_when_asked_for(redis_server: RedisServer) -> None:
    metrics = Metrics()
    settings = Settings.model_construct(cap_warning_ratio=0.3, metrics_team_label=True)
    team = _admit_four(redis_server, settings, metrics)
    assert _warnings(metrics, "daily", team) == 1
    assert _warnings(metrics, "monthly", team) == 1  # 300 of 1,000 crossed 30 %
    assert _warnings(metrics, "daily") is None
