"""The delivery worker over time: retries on schedule, a lost queue survived, orphaned work taken
over, all by itself."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import redis

from gateway.store import redis_keys
from tests.jobs import KONTEXT, submit, valid_body
from tests.peer import Peer
from tests.servers import Emulator, Gateway, RedisServer


def _hook(peer: Peer, name: str) -> tuple[str, str]:
    path = f"/hooks/{name}-{os.urandom(4).hex()}"
    return path, f"{peer.url}{path}"


QUEUES = [redis_keys.delivery_stream(shard) for shard in range(redis_keys.SHARDS)]
DEFAULT_QUEUE = redis_keys.delivery_stream(redis_keys.shard_of("default"))
"""The shard of the queue of the team keys are made in by default."""


def _metric(gateway: Gateway, line_start: str) -> float:
    for line in httpx.get(f"{gateway.url}/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_retry_is_sent_when_it_falls_due_not_at_the_next_claim(
    emulator: Emulator, peer: Peer
) -> None:
    settings = {"webhook_retry_schedule": "1.5", "webhook_claim_idle": 120}
    with RedisServer() as store, Gateway(store.url, emulator.url, settings) as gateway:
        token, _ = gateway.new_key()
        path, url = _hook(peer, "retry")
        peer.fail_paths.add(path)
        with gateway.client(token) as client:
            submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=url)
        peer.wait_for_posts(path, 1)
        peer.fail_paths.discard(path)
        first, second = peer.wait_for_posts(path, 2, timeout=30)
    # Due 1.5 s ± 20 % after the failure; before the schedule it waited for the claim (120 s).
    assert 1.0 < second.at - first.at < 10


def test_the_worker_survives_its_queue_being_lost_and_made_again(
    emulator: Emulator, peer: Peer
) -> None:
    with RedisServer() as store, Gateway(store.url, emulator.url) as gateway:
        token, _ = gateway.new_key()
        with redis.Redis.from_url(store.url) as direct, gateway.client(token) as client:
            # The queue's keys replaced by something else: every read of them fails.
            direct.delete(*QUEUES)
            for queue in QUEUES:
                direct.set(queue, "not a stream")
            deadline = time.monotonic() + 20
            while (
                _metric(gateway, 'gateway_background_failures_total{loop="webhook_delivery"}') < 2
            ):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            # Then gone, as on a primary that came back empty: the group is made again.
            direct.delete(*QUEUES)
            path, url = _hook(peer, "after-loss")
            submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=url)
            peer.wait_for_posts(path, 1, timeout=30)
        ready = httpx.get(f"{gateway.url}/readyz")
        assert ready.status_code == 200
        assert ready.json()["loops"] == "ok"


def test_deliveries_orphaned_by_a_killed_process_are_all_taken_over(
    emulator: Emulator, peer: Peer
) -> None:
    count = 40
    paths: list[str] = []
    gate = threading.Event()
    with RedisServer() as store:
        settings = {"webhook_timeout": 8, "webhook_target_concurrency": 2}
        with Gateway(store.url, emulator.url, settings) as victim:
            token, created = victim.new_key()
            with victim.client(token) as client:
                for n in range(count):
                    path, url = _hook(peer, f"orphan{n}")
                    peer.gates[path] = gate  # the receiver hangs: deliveries pile up, pending
                    paths.append(path)
                    submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=url)
            with redis.Redis.from_url(store.url) as direct:
                deadline = time.monotonic() + 30
                while direct.xpending(DEFAULT_QUEUE, "relay")["pending"] < count:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            assert victim.process is not None
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait()
        gate.set()
        with (
            Gateway(store.url, emulator.url, {"webhook_claim_idle": 1}) as survivor,
            survivor.admin() as admin,
        ):
            # The victim's attempts reached the receiver and died with it: each delivery is
            # finished by the survivor (its lock, if the victim held one, lapses first).
            deadline = time.monotonic() + 60
            while True:
                deliveries = admin.get(
                    "/admin/v1/deliveries", params={"key_id": str(created["id"])}
                ).json()["deliveries"]
                if [d["status"] for d in deliveries] == ["delivered"] * count:
                    break
                assert time.monotonic() < deadline, deliveries
                time.sleep(0.2)
            for path in paths:
                assert len(peer.posts(path)) in (1, 2)  # the victim's hung attempt, maybe
            with redis.Redis.from_url(store.url) as direct:
                assert direct.xlen(DEFAULT_QUEUE) == 0


def test_a_finished_delivery_is_kept_for_the_delivery_retention(
    emulator: Emulator, peer: Peer
) -> None:
    with (
        RedisServer() as store,
        Gateway(store.url, emulator.url, {"delivery_retention": 100}) as gateway,
    ):
        token, _ = gateway.new_key()
        path, url = _hook(peer, "kept")
        with gateway.client(token) as client:
            job = submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=url)
        peer.wait_for_posts(path, 1)
        record = redis_keys.delivery("default", job["request_id"])
        with redis.Redis.from_url(store.url) as direct:
            deadline = time.monotonic() + 10
            while direct.hget(record, "status") != b"delivered":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            # While pending it was kept through its retry schedule and the retention; now
            # only the retention is left.
            assert 90 < direct.ttl(record) <= 100
