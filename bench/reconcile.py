"""Reconciliation and usage reports over many teams: what they cost with idle tenants and with
some open work.

Everything runs on this machine: redis-server, the emulator and one gateway process (which
admits jobs, loses fal's webhooks so the jobs stay open, and answers the usage report), started
as in the tests. Teams are created directly in Redis with the gateway's own ``TeamStore``.
Reconciler passes run in this process, built as the app builds them, and are measured on their
own: wall time, this process's CPU time, and Redis commands (``INFO commandstats``, commands run
by scripts included; the idle gateway process adds about one a second).

    .venv/bin/python -m bench.reconcile [--teams 10000] [--busy-teams 100] [--jobs 5]

To measure another version of the gateway, put its package first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import statistics
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from gateway.accounts.teams import TeamStore
from gateway.jobs.finisher import Finisher
from gateway.jobs.reconciler import Reconciler
from gateway.policy.limits import TeamLimits
from gateway.settings import Settings
from gateway.store import redis_keys
from gateway.store.pool import connect_redis, connect_store
from gateway.store.retention import Retention
from gateway.store.scripts import Scripts
from gateway.telemetry.metrics import Metrics
from gateway.upstream import FalUpstream
from gateway.upstream.links import Links
from gateway.upstream.pool import account_pool
from tests.jobs import KONTEXT, valid_body
from tests.servers import Emulator, Gateway, RedisServer

LOST_WEBHOOKS = "http://127.0.0.1:9"
"""The gateway's public URL as fal sees it: a closed port, so jobs end without it hearing."""


async def _commands(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(int(entry["calls"]) for entry in stats.values())


async def _measure(redis: Redis, work: Any) -> dict[str, float]:
    before = await _commands(redis)
    cpu, wall = time.process_time(), time.perf_counter()
    await work
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    commands = await _commands(redis) - before - 1  # this INFO itself
    return {"seconds": wall, "cpu_seconds": cpu, "commands": commands}


@contextlib.asynccontextmanager
async def _reconciler(
    redis: Redis, settings: Settings, metrics: Metrics
) -> AsyncIterator[Reconciler]:
    """A reconciler built as the app builds it."""
    store = connect_store(settings)
    scripts = Scripts(store, metrics, Retention.of(settings))
    accounts = account_pool(settings, store, scripts, metrics)
    await accounts.start()
    upstream = FalUpstream(settings, metrics, accounts)
    links = Links(
        settings.public_url,
        (settings.upstream_queue_url, settings.upstream_run_url, settings.upstream_rest_url),
        settings.media_hosts,
        settings.link_signing_key(),
    )
    finisher = Finisher(scripts, upstream, accounts, links, metrics, TeamStore(redis))
    try:
        if "scripts" in inspect.signature(Reconciler).parameters:
            yield Reconciler(store, scripts, finisher, upstream, accounts, settings, metrics)
        else:  # the reconciler before the shared schedule took the redis-py client instead
            yield Reconciler(redis, finisher, upstream, settings, metrics)  # type: ignore[arg-type,call-arg]
    finally:
        await finisher.close()
        await upstream.aclose()
        await store.aclose()


async def _create_teams(redis: Redis, count: int) -> None:
    teams = TeamStore(redis)
    for start in range(0, count, 200):
        await asyncio.gather(
            *(
                teams.create(f"idle-{n:06d}", f"idle {n}", TeamLimits())
                for n in range(start, min(start + 200, count))
            )
        )


def _submit_orphans(gateway: Gateway, busy_teams: int, jobs: int) -> list[str]:
    teams = [f"busy-{n:04d}" for n in range(busy_teams)]
    for team in teams:
        token, _ = gateway.new_key(team_id=team)
        with gateway.client(token) as client:
            for _ in range(jobs):
                assert client.post(f"/{KONTEXT}", json=valid_body(KONTEXT)).status_code == 200
    return teams


def _usage_seconds(gateway: Gateway, days: int, repeat: int = 3) -> tuple[float, int]:
    today = datetime.now(UTC).date()
    params = {"from": (today - timedelta(days=days - 1)).isoformat(), "group_by": "team_id"}
    times = []
    with gateway.admin() as admin:
        for _ in range(repeat):
            started = time.perf_counter()
            response = admin.get("/admin/v1/usage", params=params, timeout=600)
            times.append(time.perf_counter() - started)
            response.raise_for_status()
    return statistics.median(times), len(response.json()["usage"])


async def bench(teams: int, busy_teams: int, jobs: int) -> dict[str, Any]:
    results: dict[str, Any] = {"teams": teams, "busy_teams": busy_teams, "jobs": jobs}
    with contextlib.ExitStack() as stack:
        redis_server = stack.enter_context(RedisServer())
        emulator = stack.enter_context(
            Emulator({"runners": 16, "queue_delay": 0, "run_time": 0.05, "log_interval": 0})
        )
        quiet = {"reconcile_interval": 86400, "reconcile_after": 86400, "public_url": LOST_WEBHOOKS}
        gateway = stack.enter_context(Gateway(redis_server.url, emulator.url, quiet))
        settings = Settings(
            redis_url=redis_server.url,
            fal_key=(Emulator.KEY,),
            upstream_queue_url=emulator.url,
            upstream_run_url=f"{emulator.url}/sync",
            upstream_rest_url=emulator.url,
            admin_token="bench",
        )
        redis = connect_redis(settings)
        await _create_teams(redis, teams)
        await redis.delete(redis_keys.RECONCILE_AUDIT)  # the gateway's start-up pass took it
        async with _reconciler(redis, settings, Metrics()) as idle:
            results["idle_first_pass"] = await _measure(redis, idle.sweep())
            results["idle_pass"] = await _measure(redis, idle.sweep())

        busy = _submit_orphans(gateway, busy_teams, jobs)
        await asyncio.sleep(1.0)  # every job has finished at fal
        fast = settings.model_copy(update={"reconcile_after": 0.5})
        async with _reconciler(redis, fast, Metrics()) as due:
            results["busy_pass"] = await _measure(redis, due.sweep())
        reserved = [await redis.hget(f"fgw:{{{t}}}:team", "reserved") for t in busy]
        results["busy_left_open"] = sum(1 for r in reserved if r not in (None, "0"))
        results["usage_one_day"], results["usage_rows"] = _usage_seconds(gateway, 1)
        results["usage_30_days"], _ = _usage_seconds(gateway, 30)
        await redis.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teams", type=int, default=10_000)
    parser.add_argument("--busy-teams", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=5, help="open jobs per busy team")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench(args.teams, args.busy_teams, args.jobs)), indent=2))


if __name__ == "__main__":
    main()
