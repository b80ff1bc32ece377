"""A primary of the cluster fails and its replica takes over (the cluster's own failover) while
jobs of a team on that primary are submitted: callers see 503 at worst, traffic resumes without
a restart, and every admitted job is charged exactly once."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from gateway.store import redis_keys
from tests.cluster_servers import RedisClusterServers
from tests.jobs import KONTEXT, valid_body
from tests.limits.conftest import ledger, settled_when, team_state
from tests.servers import Emulator, Gateway

FUNDS = 10**9


@pytest.fixture(scope="module")
def replicated_cluster() -> Iterator[RedisClusterServers]:
    with RedisClusterServers(primaries=3, replicas=1) as cluster:
        yield cluster


class _Traffic:
    """Submits, one after another, until stopped; every answer recorded."""

    def __init__(self, gateway: Gateway, token: str) -> None:
        self._client = gateway.client(token)
        self.responses: list[httpx.Response] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.responses.append(self._client.post(f"/{KONTEXT}", json=valid_body(KONTEXT)))
            time.sleep(0.02)

    def __enter__(self) -> _Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self._client.close()


def test_a_primary_failing_over_to_its_replica_is_survived(
    replicated_cluster: RedisClusterServers, fast_emulator: Emulator
) -> None:
    cluster = replicated_cluster
    # A submit cut off by the failure may leave a reservation that was never forwarded: it is
    # refunded after BIND_GRACE.
    settings = {"reconcile_after": 1, "reconcile_interval": 0.5, "bind_grace": 2}
    with ExitStack() as stack:
        gateway = stack.enter_context(Gateway(cluster.url, fast_emulator.url, settings))
        team = f"failover-{os.urandom(3).hex()}"
        gateway.ensure_team(team, FUNDS)
        token = gateway.new_key(team_id=team)[0]
        victim = cluster.port_of(redis_keys.team_record(team))

        with _Traffic(gateway, token) as traffic:
            time.sleep(1)
            next(n for n in cluster.nodes if n.port == victim).stop()
            cluster.wait_failed_over(victim)
            recovered = len(traffic.responses)
            deadline = time.monotonic() + 15
            while not any(r.status_code == 200 for r in traffic.responses[recovered:]):
                assert time.monotonic() < deadline, "traffic did not resume after the failover"
                time.sleep(0.1)
            time.sleep(1)

        codes = Counter(r.status_code for r in traffic.responses)
        assert set(codes) == {200, 503}, codes  # 503s while the primary was away, then 200s
        assert all(
            r.json()["detail"] for r in traffic.responses if r.status_code == 503
        )  # fal's error shape
        admitted = [r.json()["request_id"] for r in traffic.responses if r.status_code == 200]
        cost = int(
            next(r for r in traffic.responses if r.status_code == 200).headers[
                "x-gateway-reserved-micros"
            ]
        )
        settled_when(lambda: team_state(gateway, team)["reserved_micros"] == 0, timeout=60)
        charged = Counter(e["request_id"] for e in ledger(gateway, team) if e["kind"] == "usage")
        assert all(count == 1 for count in charged.values())  # never twice
        assert set(charged) == set(admitted)
        assert team_state(gateway, team)["balance_micros"] == FUNDS - len(admitted) * cost
