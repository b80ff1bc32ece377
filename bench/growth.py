"""How much Redis keeps per job, and what of it would never go away.

Runs N queue jobs through one gateway process against the emulator (no queue delay, no run
time), once without and once with a caller webhook per job (a loopback receiver that answers
200), each on a fresh redis-server. Once every job is settled and every webhook delivered, it
reports the growth of ``used_memory`` per job and, by key family, the keys, their
``MEMORY USAGE`` per job, their encodings and how many have no TTL. Per-job families (request
records, reservations, deliveries, ...) should all have one; what has none should be per team or
per key, or a stream trimmed by its retention.

    .venv/bin/python -m bench.growth [--jobs N]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx
import redis

from tests.jobs import KONTEXT, valid_body
from tests.keyspace import PER_JOB, Family, census
from tests.peer import Peer
from tests.servers import Emulator, Gateway, RedisServer

TEAM = "growth"
KNOBS = {"queue_delay": 0, "run_time": 0, "log_interval": 0, "runners": 8}


async def _submit_all(
    url: str, token: str, jobs: int, webhook: str | None, concurrency: int = 32
) -> None:
    body = valid_body(KONTEXT)
    params = {"fal_webhook": webhook} if webhook else {}
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:

        async def one() -> None:
            async with gate:
                response = await client.post(f"/{KONTEXT}", json=body, params=params)
                response.raise_for_status()

        await asyncio.gather(*(one() for _ in range(jobs)))


def _wait_settled(client: redis.Redis, timeout: float = 600) -> None:
    """Until the team has no open reservation left."""
    deadline = time.monotonic() + timeout
    while client.zcard(f"fgw:{{{TEAM}}}:open"):
        if time.monotonic() > deadline:
            raise SystemExit("jobs did not settle in time")
        time.sleep(0.2)


def run(jobs: int, webhooks: bool) -> dict[str, Any]:
    """One scenario on a fresh Redis: figures per job and the census by family."""
    with (
        RedisServer() as server,
        Emulator(KNOBS) as emulator,
        Gateway(server.url, emulator.url) as gateway,
        Peer() as receiver,
    ):
        client = redis.Redis.from_url(server.url, decode_responses=True)
        token, _ = gateway.new_key(team_id=TEAM)
        before = census(client)
        used_before = int(client.info("memory")["used_memory"])
        started = time.monotonic()
        hook = f"{receiver.url}/hook" if webhooks else None
        asyncio.run(_submit_all(gateway.url, token, jobs, hook))
        _wait_settled(client)
        if webhooks:
            receiver.wait_for_posts("/hook", jobs, timeout=600)
            time.sleep(1.0)  # the last deliveries' records are written after their POST
        elapsed = time.monotonic() - started
        used_after = int(client.info("memory")["used_memory"])
        after = census(client)
        client.close()
    return {
        "jobs": jobs,
        "webhooks": webhooks,
        "seconds": elapsed,
        "used_per_job": (used_after - used_before) / jobs,
        "families": {
            name: _grown(found, before.get(name, Family())) for name, found in after.items()
        },
    }


def _grown(after: Family, before: Family) -> Family:
    return Family(
        keys=after.keys - before.keys,
        bytes=after.bytes - before.bytes,
        without_ttl=after.without_ttl,
        types=after.types,
        encodings=after.encodings,
    )


def report(result: dict[str, Any]) -> str:
    jobs = result["jobs"]
    families: dict[str, Family] = result["families"]
    streams = sum(f.bytes for f in families.values() if f.without_ttl and "stream" in f.types)
    others = sum(f.bytes for f in families.values() if f.without_ttl and "stream" not in f.types)
    per_job_forever = [n for n, f in families.items() if _per_job(n) and f.without_ttl]
    lines = [
        f"### {jobs} jobs, {'a webhook each' if result['webhooks'] else 'no webhooks'}",
        "",
        f"used_memory grew {result['used_per_job']:,.0f} bytes per job. Keys without a TTL grew "
        f"{others / jobs:,.0f} bytes per job, and streams (which have none) "
        f"{streams / jobs:,.0f}. Per-job families with keys without a TTL: "
        f"{', '.join(per_job_forever) or 'none'}. ({result['seconds']:.0f} s)",
        "",
        "| family | type (encoding) | keys | bytes per job | keys without TTL |",
        "|---|---|---|---|---|",
    ]
    for name, found in sorted(families.items(), key=lambda item: -item[1].bytes):
        kinds = ", ".join(sorted(found.types))
        encodings = ", ".join(sorted(found.encodings))
        lines.append(
            f"| `{name}` | {kinds} ({encodings}) | {found.keys:+,} | "
            f"{found.bytes / jobs:,.0f} | {found.without_ttl:,} |"
        )
    return "\n".join(lines)


def _per_job(name: str) -> bool:
    return any(name.endswith(f":{kind}:*") for kind in PER_JOB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()
    for webhooks in (False, True):
        print(report(run(args.jobs, webhooks)), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
