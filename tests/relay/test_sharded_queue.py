"""The delivery queue split over shards: every shard is read, a delivery whose queue entry was lost
is queued again by the reconciler, duplicate entries deliver once. Each test has a Redis of its
own: the queue's state is part of the test."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import redis

from gateway.store import redis_keys
from tests.jobs import KONTEXT, submit, valid_body
from tests.limits.conftest import client_for
from tests.peer import Peer
from tests.servers import Emulator, Gateway, RedisServer

FAST_RECONCILE = {"reconcile_interval": 0.2, "reconcile_after": 0.1}


def _hook(peer: Peer, name: str) -> tuple[str, str]:
    path = f"/hooks/{name}-{os.urandom(4).hex()}"
    return path, f"{peer.url}{path}"


def _until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _team_per_shard() -> list[str]:
    """One new team id for each shard."""
    teams: dict[int, str] = {}
    while len(teams) < redis_keys.SHARDS:
        team = f"t-{os.urandom(5).hex()}"
        teams.setdefault(redis_keys.shard_of(team), team)
    return [teams[shard] for shard in range(redis_keys.SHARDS)]


def _entries(direct: redis.Redis, team_id: str) -> dict[str, str]:
    """The team's shard of the queue: delivery id → entry id."""
    queue = redis_keys.delivery_stream(redis_keys.shard_of(team_id))
    entries = cast(list[tuple[str, dict[str, str]]], direct.xrange(queue))
    return {fields["delivery_id"]: entry for entry, fields in entries}


def _empty(direct: redis.Redis, name: str) -> bool:
    return direct.zcard(name) == 0


@contextmanager
def _running(
    emulator: Emulator, settings: dict[str, Any]
) -> Iterator[tuple[Gateway, redis.Redis, str]]:
    """A gateway on a Redis of its own, a client of that Redis, and a key's token."""
    with (
        RedisServer() as store,
        Gateway(store.url, emulator.url, settings) as gateway,
        redis.Redis.from_url(store.url, decode_responses=True) as direct,
    ):
        token, _ = gateway.new_key()
        yield gateway, direct, token


def write_pending_delivery(
    direct: redis.Redis, key_id: str, delivery_id: str, url: str, at: float
) -> None:
    """A delivery record of the default team as ``finish.lua`` writes it, created ``at``."""
    fields: dict[Any, Any] = {"team_id": "default", "key_id": key_id, "url": url}
    fields["request_id"] = delivery_id
    fields |= {"body": "{}", "status": "pending", "attempts": "0"}
    fields |= {"next_at": str(at), "created": str(at)}
    direct.hset(redis_keys.delivery("default", delivery_id), mapping=fields)


def test_deliveries_of_teams_on_every_shard_all_arrive(emulator: Emulator, peer: Peer) -> None:
    with RedisServer() as store, Gateway(store.url, emulator.url) as gateway:
        hooks = {}
        for team in _team_per_shard():
            gateway.ensure_team(team, 10_000_000)
            path, url = _hook(peer, team)
            with client_for(gateway, team) as client:
                job = submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=url)
            hooks[path] = (team, job["request_id"])
        for path in hooks:
            peer.wait_for_posts(path, 1, timeout=30)
        with redis.Redis.from_url(store.url, decode_responses=True) as direct:
            for team, request_id in hooks.values():
                listed = redis_keys.undelivered(team)
                _until(functools.partial(_empty, direct, listed))
                shard = redis_keys.shard_of(team)
                assert direct.xlen(redis_keys.delivery_stream(shard)) == 0
                assert direct.get(redis_keys.delivery_team(request_id)) == team
        assert {redis_keys.shard_of(team) for team, _ in hooks.values()} == set(
            range(redis_keys.SHARDS)
        )


def test_a_delivery_whose_queue_entry_was_lost_is_queued_again_and_sent_once(
    emulator: Emulator, peer: Peer
) -> None:
    # One delivery at a time: while the first hangs at its receiver, the second stays unread.
    settings = {
        **FAST_RECONCILE,
        "webhook_concurrency": 1,
        "webhook_timeout": 5,  # the hung attempt outlasts the test's steps
        "webhook_claim_idle": 1,
    }
    gate = threading.Event()
    with _running(emulator, settings) as (gateway, direct, token):
        hung, hung_url = _hook(peer, "hung")
        lost, lost_url = _hook(peer, "lost")
        peer.gates[hung] = gate
        with gateway.client(token) as client:
            submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=hung_url)
            peer.wait_for_posts(hung, 1)
            job = submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=lost_url)
        delivery_id = job["request_id"]
        # Queued, unread: the entry a crash after finish.lua would never have written.
        _until(lambda: delivery_id in _entries(direct, "default"))
        queue = redis_keys.delivery_stream(redis_keys.shard_of("default"))
        assert direct.xpending(queue, redis_keys.DELIVERY_GROUP)["pending"] == 1  # the hung one
        direct.xdel(queue, _entries(direct, "default")[delivery_id])
        assert direct.zscore(redis_keys.undelivered("default"), delivery_id) is not None
        gate.set()
        peer.wait_for_posts(lost, 1, timeout=30)
        _until(lambda: direct.zcard(redis_keys.undelivered("default")) == 0)
        time.sleep(1.0)  # several reconciler passes and worker turns more
        assert len(peer.posts(lost)) == 1
        record = redis_keys.delivery("default", delivery_id)
        assert (direct.hget(record, "status"), direct.hget(record, "attempts")) == (
            "delivered",
            "1",
        )


def test_a_duplicate_entry_neither_hurries_a_retry_nor_repeats_a_delivery(
    emulator: Emulator, peer: Peer
) -> None:
    settings = {"webhook_retry_schedule": "3", "webhook_claim_idle": 120}
    with _running(emulator, settings) as (gateway, direct, token):
        path, url = _hook(peer, "dup")
        peer.fail_paths.add(path)
        with gateway.client(token) as client:
            job = submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=url)
        (first,) = peer.wait_for_posts(path, 1)
        peer.fail_paths.discard(path)
        queue = redis_keys.delivery_stream(redis_keys.shard_of("default"))
        entry: dict[Any, Any] = {"team_id": "default", "delivery_id": job["request_id"]}
        record = redis_keys.delivery("default", job["request_id"])
        _until(lambda: direct.hget(record, "attempts") == "1")
        direct.xadd(queue, entry)  # while its retry waits ~3 s: dropped, not sent early
        first, second = peer.wait_for_posts(path, 2, timeout=30)
        assert second.at - first.at > 3 * 0.8 - 0.1
        _until(lambda: direct.hget(record, "status") == "delivered")
        direct.xadd(queue, entry)  # once delivered: dropped
        _until(lambda: direct.xlen(queue) == 0)
        time.sleep(0.5)
        assert len(peer.posts(path)) == 2


def test_the_audit_finds_a_team_whose_only_work_is_an_undelivered_delivery(
    emulator: Emulator, peer: Peer
) -> None:
    """Off the schedule (its admission's ``ZADD`` lost), no open reservation, no queue entry:
    the audit at start puts the team back, and its look queues the delivery."""
    settings = {**FAST_RECONCILE, "webhook_timeout": 1, "webhook_claim_idle": 1}
    with RedisServer() as store:
        with Gateway(store.url, emulator.url) as before:
            _, created = before.new_key()
        path, url = _hook(peer, "audited")
        delivery_id = f"audited-{os.urandom(4).hex()}"
        past = time.time() - 100
        with redis.Redis.from_url(store.url, decode_responses=True) as direct:
            write_pending_delivery(direct, str(created["id"]), delivery_id, url, past)
            direct.zadd(redis_keys.undelivered("default"), {delivery_id: past + 10})
            direct.delete(redis_keys.RECONCILE_AUDIT)  # the last audit is long over
            due = redis_keys.reconcile_due(redis_keys.shard_of("default"))
            assert direct.zscore(due, "default") is None
            with Gateway(store.url, emulator.url, settings):
                peer.wait_for_posts(path, 1, timeout=30)
                _until(functools.partial(_empty, direct, redis_keys.undelivered("default")))
                _until(lambda: direct.zscore(due, "default") is None)  # nothing left to look at
        assert len(peer.posts(path)) == 1
