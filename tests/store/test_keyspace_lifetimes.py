"""After real jobs (some with a caller webhook, delivered), every key that belongs to one job has
a TTL, and request records stay in Redis' compact hash encoding."""

from __future__ import annotations

import os
import time

import redis

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
