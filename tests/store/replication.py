"""Real replication for failover tests: a Sentinel process, one switchable name in front of two
Redis servers (a TCP proxy, as a managed Redis's DNS name), and waiting for a replica."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Self

import redis

from tests.servers import RedisServer

SERVICE = "gateway"


def replica_of(primary: RedisServer) -> RedisServer:
    """A Redis server (not started) replicating ``primary``."""
    return RedisServer(None, "--replicaof", "127.0.0.1", str(primary.port))


def client(server: RedisServer | int) -> redis.Redis:
    port = server if isinstance(server, int) else server.port
    return redis.Redis(port=port, decode_responses=True, socket_timeout=5)


def wait_replicated(primary: RedisServer, replica: RedisServer, timeout: float = 10) -> None:
    """Until ``replica`` has everything ``primary`` acknowledged so far."""
    with client(primary) as source, client(replica) as copy:
        target = int(source.info("replication")["master_repl_offset"])
        deadline = time.monotonic() + timeout
        while True:
            state = copy.info("replication")
            if state.get("master_link_status") == "up" and state["slave_repl_offset"] >= target:
                return
            assert time.monotonic() < deadline, f"replica behind: {state}"
            time.sleep(0.02)


def promote(new_primary: RedisServer, old_primary: RedisServer) -> None:
    """A manual failover: ``new_primary`` stops replicating, ``old_primary`` replicates it."""
    with client(new_primary) as promoted, client(old_primary) as demoted:
        promoted.execute_command("REPLICAOF", "NO", "ONE")
        demoted.execute_command("REPLICAOF", "127.0.0.1", str(new_primary.port))


class Sentinel(RedisServer):
    """A ``redis-server --sentinel`` watching ``primary`` as service ``gateway``; it fails over
    about a second after the primary stops answering (quorum 1)."""

    def __init__(self, primary: RedisServer) -> None:
        super().__init__()
        self._config = Path(self._dir.name) / "sentinel.conf"  # sentinel rewrites it
        self._config.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self._dir.name}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 3000\n"
        )

    def command(self) -> list[str]:
        from gateway.cli.devstack import redis_server_binary

        return [redis_server_binary(), str(self._config), "--sentinel"]

    def wait_for_replicas(self, count: int, timeout: float = 15) -> None:
        """Until the sentinel knows ``count`` replicas that are in sync (it can fail over)."""
        deadline = time.monotonic() + timeout
        with client(self.port) as sentinel:
            while True:
                replicas = sentinel.sentinel_slaves(SERVICE)
                healthy = [r for r in replicas if r["master-link-status"] == "ok"]
                if len(healthy) >= count:
                    return
                assert time.monotonic() < deadline, f"sentinel sees replicas {replicas}"
                time.sleep(0.1)

    def primary_port(self) -> int:
        with client(self.port) as sentinel:
            _, port = sentinel.sentinel_get_master_addr_by_name(SERVICE)
            return int(port)


def sentinel_url(*sentinels: Sentinel, db: int = 0) -> str:
    hosts = ",".join(f"127.0.0.1:{s.port}" for s in sentinels)
    return f"redis+sentinel://{hosts}/{SERVICE}/{db}"


class SwitchableName:
    """One address in front of Redis servers, like a managed Redis's DNS name: new connections
    go to the current backend; connections made before a ``switch`` stay with the old one."""

    def __init__(self, backend: RedisServer) -> None:
        self._backend = backend.port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def switch(self, backend: RedisServer) -> None:
        self._backend = backend.port

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self._backend), timeout=5)
            except OSError:
                downstream.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [downstream, upstream]
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Self:
        self._accepting.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        self._accepting.join(timeout=5)
        with self._lock:
            for sock in self._sockets:
                sock.close()
