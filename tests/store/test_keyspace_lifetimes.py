"""After real jobs (some with a caller webhook, delivered), every key that belongs to one job has
a TTL, and request records stay in Redis' compact hash encoding."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import redis

from gateway.accounts.requests import RequestRegistry, stored_status
from gateway.jobs.finisher import completed_status
from gateway.store import redis_keys
from gateway.store.multiplexed import MultiplexedRedis
from tests.jobs import KONTEXT, submit, valid_body, wait_status
from tests.keyspace import PER_JOB, census
from tests.peer import Peer
from tests.servers import Gateway, RedisServer

COMPACT = {"ziplist", "listpack"}
"""Redis 6.2 calls the compact hash encoding ziplist; Redis 7 calls it listpack."""


def test_no_key_of_a_job_lives_forever(
    gateway: Gateway, redis_server: RedisServer, peer: Peer
) -> None:
    team_id = f"life-{os.urandom(4).hex()}"
    secret, _ = gateway.new_key(team_id=team_id)
    hook = f"/hook-{team_id}"
    with gateway.client(secret) as client:
        hooked = [
            submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=f"{peer.url}{hook}")
            for _ in range(3)
        ]
        plain = [submit(client, KONTEXT, valid_body(KONTEXT)) for _ in range(2)]
        peer.wait_for_posts(hook, 3)
        wait_status(client, plain[0]["status_url"])
        # fal's webhook has been relayed, so the job's end is known: answered from the record.
        known = client.get(hooked[0]["status_url"]).json()
    store = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        deadline = time.monotonic() + 20
        while store.zcard(f"fgw:{{{team_id}}}:open"):
            assert time.monotonic() < deadline, "jobs did not settle"
            time.sleep(0.05)
        delivery_ids = [s["request_id"] for s in hooked]
        found = census(
            store, f"fgw:{{{team_id}}}:*", *(f"fgw:delivery-team:{d}" for d in delivery_ids)
        )
    finally:
        store.close()

    per_job = {name: f for name, f in found.items() if name.rsplit(":", 2)[-2] in PER_JOB}
    assert {name.rsplit(":", 2)[-2] for name in per_job} >= {
        "req",
        "resv",
        "delivery",
        "delivery-team",
    }
    assert {name: f.without_ttl for name, f in per_job.items() if f.without_ttl} == {}
    assert per_job["fgw:{*}:req:*"].keys == 5
    assert per_job["fgw:{*}:req:*"].encodings <= COMPACT
    # The status rebuilt from the record's short form is fal's, with the gateway's URLs.
    urls = ("status_url", "response_url", "cancel_url")
    assert known == {
        "status": "COMPLETED",
        "request_id": hooked[0]["request_id"],
        "logs": None,
        "metrics": {},
        **{name: hooked[0][name] for name in urls},
    }


def test_a_final_status_is_kept_short_and_read_back_whole(redis_server: RedisServer) -> None:
    request_id = "0b1d6c1e-7a52-4f0e-9d3f-2a7c5c4e8f11"
    urls = {
        f"{name}_url": f"https://queue.fal.run/fal-ai/x/requests/{request_id}/{name}"
        for name in ("status", "response", "cancel")
    }
    polled = {
        "status": "COMPLETED",
        "request_id": request_id,
        "logs": None,
        "metrics": {"inference_time": 1.2734},
        **urls,
    }
    short = stored_status(request_id, polled)
    assert short == '{"metrics":{"inference_time":1.2734}}'
    assert len(short) <= 64
    assert stored_status(request_id, completed_status(request_id)) == "{}"

    async def read_back() -> dict[str, Any] | None:
        store = MultiplexedRedis(redis_server.url, 2.0)
        try:
            team_id = f"fs-{os.urandom(4).hex()}"
            record = redis_keys.request_record(team_id, request_id)
            fields = ("key_id", "k", "app_id", "fal-ai/x", "endpoint_id", "fal-ai/x")
            await store.execute(
                [
                    ("HSET", record, *fields, "created_at", "1", "final_status", short),
                    ("EXPIRE", record, 60),
                ]
            )
            owned = await RequestRegistry(store, 60).lookup(team_id, request_id)
            return owned.final_status if owned else None
        finally:
            await store.aclose()

    # Everything but the queue URLs, which the gateway sets to its own when it answers.
    assert asyncio.run(read_back()) == {k: v for k, v in polled.items() if k not in urls}
