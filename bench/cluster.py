"""Submit and status throughput with Redis as one node and as a 3-primary Redis Cluster, same
machine, same run; and how evenly the cluster's primaries share the commands.

For each topology: a fresh Redis (one ``redis-server``, or three ``--cluster-enabled`` ones made
a cluster), the emulator, one gateway worker and ``teams`` teams with a key each (team ids spread
over the slots). wrk saturates status polls of finished requests (one per team, the gateway
answers from its state) and then submits (the emulator only queues them). Redis commands are
counted from ``INFO commandstats`` of every primary during each row.

    .venv/bin/python -m bench.cluster [--seconds 10] [--connections 32] [--teams 12]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.tools import wrk
from tests.cluster_servers import RedisClusterServers
from tests.servers import Emulator, Gateway, RedisServer

INPAINTING = "fal-ai/flux-lora/inpainting"
TOPOLOGIES = ("one node", "3-primary cluster")


def _commands(port: int) -> int:
    with redis.Redis(port=port, decode_responses=True) as node:
        stats = node.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_"))


@contextlib.contextmanager
def _redis(topology: str) -> Iterator[tuple[str, list[int]]]:
    """The gateway's URL for the topology, and its primaries' ports."""
    if topology == "one node":
        with RedisServer() as server:
            yield server.url, [server.port]
    else:
        with RedisClusterServers() as cluster:
            yield cluster.url, cluster.primary_ports()


def _wait_finished(gateway: Gateway, token: str, status_url: str) -> None:
    deadline = time.monotonic() + 30
    with gateway.client(token) as client:
        while client.get(status_url).json()["status"] != "COMPLETED":
            assert time.monotonic() < deadline, "the benchmark's job did not finish"
            time.sleep(0.05)
        client.get(status_url.removesuffix("/status")).raise_for_status()


def _row(
    url: str, ports: list[int], seconds: float, connections: int, **wrk_args: Any
) -> dict[str, Any]:
    before = [_commands(port) for port in ports]
    figures = wrk(url, seconds=seconds, connections=connections, **wrk_args)
    spent = [_commands(port) - b for port, b in zip(ports, before, strict=True)]
    figures["commands_per_request"] = sum(spent) / max(figures["requests"], 1)
    figures["busiest_share"] = max(spent) / max(sum(spent), 1)
    return figures


def measure(topology: str, seconds: float, connections: int, teams: int) -> dict[str, Any]:
    with (
        _redis(topology) as (url, ports),
        Emulator({"runners": 16, "queue_delay": 0, "run_time": 0.05}) as emulator,
        Gateway(url, emulator.url, {"workers": 1, "reconcile_after": 86400}) as gateway,
        tempfile.TemporaryDirectory(prefix="bench-") as directory,
    ):
        body = {
            "prompt": "a red fox in the snow",
            "image_url": f"{emulator.url}/files/demo/photo.png",
            "mask_url": f"{emulator.url}/files/demo/mask.png",
        }
        body_file = Path(directory) / "submit.json"
        body_file.write_text(json.dumps(body))
        # One key per team; wrk takes turns over (token, path) pairs.
        requests = []
        for index in range(teams):
            token, _ = gateway.new_key("bench", team_id=f"bench-{index}")
            with gateway.client(token) as client:
                submitted = client.post(f"/{INPAINTING}", json=body).json()
            _wait_finished(gateway, token, submitted["status_url"])
            requests.append((token, httpx.URL(submitted["status_url"]).path))
        status_targets = Path(directory) / "status.txt"
        status_targets.write_text("".join(f"Bearer {t} {p}\n" for t, p in requests))
        status = _row(
            gateway.url, ports, seconds, connections, authorization="", targets_file=status_targets
        )
        with emulator.client() as client:
            client.patch("/_emulator/knobs", json={"queue_delay": 86400}).raise_for_status()
        submit_targets = Path(directory) / "submit.txt"
        submit_targets.write_text("".join(f"Bearer {t} /{INPAINTING}\n" for t, _ in requests))
        submit = _row(
            gateway.url,
            ports,
            seconds,
            connections,
            authorization="",
            body_file=body_file,
            targets_file=submit_targets,
        )
    return {"status": status, "submit": submit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--teams", type=int, default=12)
    args = parser.parse_args()
    results = {
        topology: measure(topology, args.seconds, args.connections, args.teams)
        for topology in TOPOLOGIES
    }
    print(
        "| request | Redis | requests/s | p50 | p99 | errors"
        " | Redis commands per request | busiest primary's share |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for request in ("submit", "status"):
        for topology, rows in results.items():
            row = rows[request]
            print(
                f"| {request} | {topology} | {row['rps']:,.0f} | {row['p50_us'] / 1000:.2f} ms"
                f" | {row['p99_us'] / 1000:.2f} ms | {row['socket_errors'] + row['non_2xx']} |"
                f" {row['commands_per_request']:.2f} | {row['busiest_share']:.0%} |"
            )


if __name__ == "__main__":
    main()
