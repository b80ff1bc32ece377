"""A real Redis Cluster on loopback for tests: ``redis-server --cluster-enabled`` nodes made one
cluster by ``redis-cli --cluster create``, with what tests do to it (move slots under traffic,
fail a primary over to its replica)."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Self

import redis
from redis.crc import key_slot

from tests.servers import RedisServer

NODE_TIMEOUT_MS = 1000
BUS_OFFSET = 10000
"""A cluster node also listens on its port + 10000 (the cluster bus)."""


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def node_port() -> int:
    """A free port whose cluster bus port is free too (the OS's own picks may be too high for
    a bus port: above 55535)."""
    while True:
        port = random.randrange(20000, 30000)
        if _free(port) and _free(port + BUS_OFFSET):
            return port


def _cli() -> str:
    from gateway.cli.devstack import redis_server_binary

    return str(Path(redis_server_binary()).with_name("redis-cli"))


def _client(port: int) -> redis.Redis:
    return redis.Redis(port=port, decode_responses=True, socket_timeout=5)


def _command(c: redis.Redis, *args: str | int) -> Any:
    return c.execute_command(*args)  # type: ignore[no-untyped-call]


class RedisClusterServers:
    """``primaries`` primaries, each with ``replicas`` replicas, slots spread evenly."""

    def __init__(self, primaries: int = 3, replicas: int = 0) -> None:
        self.nodes = [
            RedisServer(
                node_port(),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
            )
            for _ in range(primaries * (1 + replicas))
        ]
        self._replicas = replicas

    @property
    def url(self) -> str:
        """The gateway's URL for the cluster (two seed nodes: one is enough, any will do)."""
        seeds = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes[:2])
        return f"redis+cluster://{seeds}"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        subprocess.run(
            [
                _cli(),
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas",
                str(self._replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
        )
        self.wait_ok()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes:
            node.__exit__(*exc)

    def client(self) -> redis.RedisCluster:
        """A synchronous redis-py cluster client, for tests to look at the data."""
        return redis.RedisCluster(host="127.0.0.1", port=self.live()[0].port, decode_responses=True)

    def live(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def wait_ok(self, timeout: float = 20) -> None:
        """Until every live node sees the cluster as up with every slot served, and agrees on
        who serves which slots."""
        deadline = time.monotonic() + timeout
        seen = ""
        while True:
            try:
                views: dict[str, list[int]] = {}
                for node in self.live():
                    with _client(node.port) as c:
                        info = str(_command(c, "CLUSTER", "INFO"))
                        if "cluster_state:ok" not in info:
                            seen = f"{node.port}: {info.splitlines()[0]}\n" + str(
                                _command(c, "CLUSTER", "NODES")
                            )
                            raise AssertionError(seen)
                        views.setdefault(self._slot_view(c), []).append(node.port)
                if len(views) == 1:
                    return
                seen = "\n".join(f"{ports}: {view}" for view, ports in views.items())
            except (AssertionError, redis.RedisError, IndexError) as exc:
                seen = seen or repr(exc)
            assert time.monotonic() < deadline, f"the cluster did not settle:\n{seen}"
            time.sleep(0.1)

    def wait_failed_over(self, port: int, timeout: float = 30) -> None:
        """Until a replica has taken over every slot of the (stopped) primary on ``port``."""
        deadline = time.monotonic() + timeout
        while port in self.primary_ports():
            assert time.monotonic() < deadline, f"no replica took over from {port}"
            time.sleep(0.1)
        self.wait_ok(timeout=max(deadline - time.monotonic(), 1))

    @staticmethod
    def _slot_view(c: redis.Redis) -> str:
        slots = _command(c, "CLUSTER", "SLOTS")
        return repr(sorted((s[0], s[1], s[2][1]) for s in slots))

    def primary_ports(self) -> list[int]:
        with _client(self.live()[0].port) as c:
            return sorted({int(s[2][1]) for s in _command(c, "CLUSTER", "SLOTS")})

    def port_of(self, key: str) -> int:
        """The port of the primary serving ``key``'s slot now."""
        return self.port_of_slot(key_slot(key.encode()))

    def node_id(self, port: int) -> str:
        with _client(port) as c:
            return str(_command(c, "CLUSTER", "MYID"))

    def move_slot(self, slot: int, to_port: int) -> int:
        """Move one slot and its keys to the primary on ``to_port`` the way ``redis-cli --cluster
        reshard`` does; how many keys moved."""
        if self.port_of_slot(slot) == to_port:
            return 0
        move = self.begin_move(slot, to_port)
        moved = move.migrate_all()
        move.finish()
        return moved

    def begin_move(self, slot: int, to_port: int) -> SlotMove:
        """Start moving ``slot`` to the primary on ``to_port`` (IMPORTING/MIGRATING): clients
        get ``ASK`` for the keys that have moved until ``finish``."""
        return SlotMove(self, slot, self.port_of_slot(slot), to_port)

    def port_of_slot(self, slot: int) -> int:
        with _client(self.live()[0].port) as c:
            for start, end, primary, *_ in _command(c, "CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(primary[1])
        raise AssertionError(f"slot {slot} is not served")


class SlotMove:
    """One slot on its way from one primary to another, as ``redis-cli --cluster reshard``
    moves it: IMPORTING/MIGRATING, ``MIGRATE`` a few keys at a time, ``SETSLOT NODE``."""

    def __init__(self, cluster: RedisClusterServers, slot: int, source: int, target: int) -> None:
        self._cluster = cluster
        self.slot = slot
        self._source, self._target = source, target
        self._source_id, self._target_id = cluster.node_id(source), cluster.node_id(target)
        self._done = False
        with _client(target) as c:
            _command(c, "CLUSTER", "SETSLOT", slot, "IMPORTING", self._source_id)
        with _client(source) as c:
            _command(c, "CLUSTER", "SETSLOT", slot, "MIGRATING", self._target_id)

    def migrate_keys(self, keys: list[str]) -> None:
        with _client(self._source) as c:
            _command(c, "MIGRATE", "127.0.0.1", self._target, "", 0, 5000, "REPLACE", "KEYS", *keys)

    def migrate_all(self, batch: int = 10) -> int:
        moved = 0
        with _client(self._source) as c:
            while keys := _command(c, "CLUSTER", "GETKEYSINSLOT", self.slot, batch):
                self.migrate_keys(keys)
                moved += len(keys)
        return moved

    def finish(self) -> None:
        """Give the slot to the target on every primary (once): the target first, then the
        source, then the others, in the order Redis's ``CLUSTER SETSLOT`` documentation gives
        (the slot always has an owner that claims it)."""
        if self._done:
            return
        self._done = True
        others = [p for p in self._cluster.primary_ports() if p not in (self._source, self._target)]
        for port in (self._target, self._source, *others):
            with _client(port) as c:
                _command(c, "CLUSTER", "SETSLOT", self.slot, "NODE", self._target_id)
