"""What the gateway costs, measured against the emulator directly and against nginx.

One run on one machine: redis-server, the emulator, one gateway worker (auth, quotas, metering
and URL rewriting all on) and nginx ``proxy_pass`` in front of the same emulator. For submits and
for status polls it measures throughput at saturation (wrk, one thread) and latency at a fixed
moderate rate (``bench.loadgen``, open loop); then how many status calls reach fal per job when
clients poll as fal's clients do; then Redis round trips per request. Writes ``bench/RESULTS.md``.

    .venv/bin/python -m bench.overhead [--seconds 10] [--rate 200] [--rate-seconds 20]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvloop

from bench import loadgen
from bench.redis_round_trips import measure as redis_round_trips
from bench.report import Report
from bench.tools import HERE, Nginx, program, wrk
from tests.servers import Emulator, Gateway, RedisServer, UpstreamLog

INPAINTING = "fal-ai/flux-lora/inpainting"
COALESCE_INTERVAL = 0.5


@dataclass(frozen=True)
class Target:
    """One way to reach the emulator's queue API."""

    name: str
    url: str
    authorization: str


@dataclass(frozen=True)
class Stack:
    targets: list[Target]
    gateway: Gateway
    emulator: Emulator
    redis: RedisServer
    body_file: Path


@contextlib.contextmanager
def stack(gateway_settings: Mapping[str, object] | None = None) -> Iterator[Stack]:
    """redis-server, the emulator, one gateway worker (with ``gateway_settings`` on top of
    the benchmark's) and nginx, all on loopback."""
    with contextlib.ExitStack() as stack_:
        redis = stack_.enter_context(RedisServer())
        emulator = stack_.enter_context(Emulator({"runners": 32, "queue_delay": 0}))
        gateway = stack_.enter_context(
            Gateway(
                redis.url,
                emulator.url,
                {
                    "workers": 1,
                    "status_coalesce_interval": COALESCE_INTERVAL,
                    # Jobs queued by the submit runs are never looked for in the middle of a run.
                    "reconcile_after": 86400,
                    **(gateway_settings or {}),
                },
            )
        )
        nginx = stack_.enter_context(Nginx(emulator.port))
        token, _ = gateway.new_key("bench")
        body = {
            "prompt": "a red fox in the snow",
            "image_url": f"{emulator.url}/files/demo/photo.png",
            "mask_url": f"{emulator.url}/files/demo/mask.png",
        }
        directory = stack_.enter_context(tempfile.TemporaryDirectory(prefix="bench-"))
        body_file = Path(directory) / "submit.json"
        body_file.write_text(json.dumps(body))
        emulator_auth = f"Key {Emulator.KEY}"
        yield Stack(
            targets=[
                Target("direct", emulator.url, emulator_auth),
                Target("nginx", nginx.url, emulator_auth),
                Target("gateway", gateway.url, f"Bearer {token}"),
            ],
            gateway=gateway,
            emulator=emulator,
            redis=redis,
            body_file=body_file,
        )


def _knobs(emulator: Emulator, **changes: Any) -> None:
    with emulator.client() as client:
        client.patch("/_emulator/knobs", json=changes).raise_for_status()


def _submit(target: Target, body_file: Path) -> dict[str, Any]:
    response = httpx.post(
        f"{target.url}/{INPAINTING}",
        content=body_file.read_bytes(),
        headers={"Authorization": target.authorization, "Content-Type": "application/json"},
        timeout=30,
    )
    response.raise_for_status()
    submitted: dict[str, Any] = response.json()
    return submitted


def fresh_queue(stack_: Stack) -> None:
    """Restart the emulator with an empty queue that never starts jobs, so every submit row
    meets the same emulator (thousands of queued jobs from an earlier row would slow it), then
    send a few submits through each way in so no row starts on a stale keep-alive connection."""
    stack_.emulator.stop()
    stack_.emulator.start()
    _knobs(stack_.emulator, queue_delay=86400)
    for target in stack_.targets:
        for _ in range(3):
            with contextlib.suppress(httpx.HTTPError):
                _submit(target, stack_.body_file)


def _finished_request(stack_: Stack) -> str:
    """A request submitted through the gateway, run, and known to it as finished."""
    gateway = stack_.targets[-1]
    submitted = _submit(gateway, stack_.body_file)
    metrics_before = _state_answers(stack_.gateway)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = httpx.get(
            submitted["status_url"], headers={"Authorization": gateway.authorization}
        ).json()
        if status["status"] == "COMPLETED" and _state_answers(stack_.gateway) > metrics_before:
            return str(submitted["request_id"])
        time.sleep(0.1)
    raise RuntimeError("the benchmark's request did not finish")


def _state_answers(gateway: Gateway) -> float:
    text = httpx.get(f"{gateway.url}/metrics").text
    for line in text.splitlines():
        if line.startswith('gateway_status_answers_total{source="state"}'):
            return float(line.split()[-1])
    return 0.0


def _status_url(target: Target, request_id: str) -> str:
    return f"{target.url}/fal-ai/flux-lora/requests/{request_id}/status"


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def saturation(
    stack_: Stack,
    rows: list[tuple[str, Target, str, Path | None]],
    seconds: float,
    connections: int,
) -> dict[str, dict[str, Any]]:
    """For each row (name, way in, URL, body to POST): requests per second with wrk keeping
    ``connections`` requests in flight, and the share of a core the gateway process used."""
    assert stack_.gateway.process is not None
    gateway_pid = stack_.gateway.process.pid
    results: dict[str, dict[str, Any]] = {}
    for name, target, url, body_file in rows:
        if body_file is not None:
            fresh_queue(stack_)
        cpu_before, started = _cpu_seconds(gateway_pid), time.monotonic()
        figures = wrk(
            url,
            seconds=seconds,
            connections=connections,
            authorization=target.authorization,
            body_file=body_file,
        )
        if target is stack_.targets[-1]:
            busy = (_cpu_seconds(gateway_pid) - cpu_before) / (time.monotonic() - started)
            figures["gateway_cpu"] = busy
        results[name] = figures
    return results


STAGES = {
    "the whole submit in the gateway (to the response's first byte)": (
        "gateway_request_duration_seconds",
        'route="submit"',
    ),
    "of which: the call to fal (the emulator)": (
        "gateway_upstream_duration_seconds",
        'operation="submit"',
    ),
    "of which: `admit.lua` (one Redis round trip)": (
        "gateway_redis_duration_seconds",
        'operation="admit"',
    ),
}
"""The gateway's own timers, read from its metrics, that split a submit's time."""


def _timer_totals(gateway: Gateway) -> dict[str, tuple[float, float]]:
    """Sum and count of each stage's histogram."""
    text = httpx.get(f"{gateway.url}/metrics").text
    totals: dict[str, tuple[float, float]] = {}
    for stage, (metric, labels) in STAGES.items():
        found = {
            part: float(line.rsplit(" ", 1)[1])
            for part in ("sum", "count")
            for line in text.splitlines()
            if line.startswith(f"{metric}_{part}{{{labels}}}")
        }
        totals[stage] = (found.get("sum", 0.0), found.get("count", 0.0))
    return totals


def stage_means(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """Mean seconds of each stage between two readings."""
    means = {}
    for stage, (total, count) in after.items():
        runs = count - before[stage][1]
        means[stage] = (total - before[stage][0]) / runs if runs else float("nan")
    return means


def fixed_rate_status(
    stack_: Stack, request_id: str, rate: float, seconds: float
) -> dict[str, loadgen.Run]:
    """Status poll latency at ``rate`` requests per second, open loop, each way in."""
    return {
        target.name: uvloop.run(
            loadgen.fixed_rate(
                _status_url(target, request_id),
                rate=rate,
                seconds=seconds,
                headers={"Authorization": target.authorization},
            )
        )
        for target in stack_.targets
    }


def fixed_rate_submit(
    stack_: Stack, rate: float, seconds: float
) -> tuple[dict[str, loadgen.Run], dict[str, float]]:
    """Submit latency at ``rate`` requests per second, open loop, each way in; and the means
    of the gateway's own timers during its run."""
    results: dict[str, loadgen.Run] = {}
    stages: dict[str, float] = {}
    for target in stack_.targets:
        fresh_queue(stack_)
        gateway = target is stack_.targets[-1]
        before = _timer_totals(stack_.gateway) if gateway else {}
        results[target.name] = uvloop.run(
            loadgen.fixed_rate(
                f"{target.url}/{INPAINTING}",
                rate=rate,
                seconds=seconds,
                headers={"Authorization": target.authorization, "Content-Type": "application/json"},
                body=stack_.body_file.read_bytes(),
            )
        )
        if gateway:
            stages = stage_means(before, _timer_totals(stack_.gateway))
    return results, stages


@dataclass(frozen=True)
class PollingRun:
    clients: str
    jobs: int
    polls: int
    upstream_calls: int
    run_seconds: float


def upstream_calls_per_job(
    stack_: Stack, jobs: int, pollers: int, interval: float, run_time: float
) -> PollingRun:
    """Run ``jobs`` jobs, each polled by ``pollers`` clients every ``interval`` seconds until
    they see COMPLETED; count the status calls that reached the emulator."""
    _knobs(stack_.emulator, queue_delay=0, run_time=run_time)
    gateway = stack_.targets[-1]
    log = UpstreamLog(stack_.emulator)
    submitted = [_submit(gateway, stack_.body_file) for _ in range(jobs)]
    polls = 0
    lock = threading.Lock()

    def poll(url: str, offset: float) -> None:
        nonlocal polls
        time.sleep(offset)
        with httpx.Client(headers={"Authorization": gateway.authorization}) as client:
            while True:
                status = client.get(url).json()["status"]
                with lock:
                    polls += 1
                if status == "COMPLETED":
                    return
                time.sleep(interval)

    threads = [
        threading.Thread(target=poll, args=(job["status_url"], n * interval / pollers))
        for job in submitted
        for n in range(pollers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = {job["request_id"] for job in submitted}
    calls = sum(
        1
        for r in log.requests()
        if r["method"] == "GET"
        and str(r["path"]).endswith("/status")
        and str(r["path"]).split("/")[-2] in ids
    )
    return PollingRun(
        clients=f"{pollers} poller(s) every {interval * 1000:g} ms",
        jobs=jobs,
        polls=polls,
        upstream_calls=calls,
        run_seconds=run_time,
    )


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo") as info:
        for line in info:
            if line.startswith("MemTotal"):
                memory_kib = int(line.split()[1])
    redis_version = subprocess.run(
        [_redis_binary(), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[2]
    tools = [
        subprocess.run([program("wrk"), "--version"], capture_output=True, text=True)
        .stdout.splitlines()[0]
        .split(" [")[0],
        subprocess.run([program("nginx"), "-v"], capture_output=True, text=True).stderr.strip(),
    ]
    return (
        f"{os.cpu_count()} vCPU {platform.machine()} ({cpu}), {memory_kib / 2**20:.0f} GiB, "
        f"{platform.platform()}, Python {platform.python_version()}, redis-server "
        f"{redis_version.removeprefix('v=')}, {', '.join(tools)}"
    )


def _redis_binary() -> str:
    from gateway.cli.devstack import redis_server_binary

    return redis_server_binary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="each saturation run")
    parser.add_argument("--connections", type=int, default=32, help="wrk's requests in flight")
    parser.add_argument("--rate", type=float, default=200.0, help="fixed-rate requests/s")
    parser.add_argument("--rate-seconds", type=float, default=20.0, help="each fixed-rate run")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    command = " ".join([Path(sys.executable).name, "-m", "bench.overhead", *sys.argv[1:]])

    with stack() as stack_:
        print("status calls per job", flush=True)
        polling = [
            upstream_calls_per_job(stack_, jobs=8, pollers=1, interval=0.5, run_time=3.0),
            upstream_calls_per_job(stack_, jobs=8, pollers=1, interval=0.1, run_time=3.0),
            upstream_calls_per_job(stack_, jobs=8, pollers=4, interval=0.1, run_time=3.0),
        ]
        print("preparing: a finished request and a queued one", flush=True)
        finished = _finished_request(stack_)
        # From here on submits stay queued: no rendering competes for the cores.
        _knobs(stack_.emulator, queue_delay=86400)
        queued = _submit(stack_.targets[-1], stack_.body_file)["request_id"]
        # Status rows first: the submit rows restart the emulator, which forgets both requests.
        gateway = stack_.targets[-1]
        print("status polls: fixed rate, then saturation", flush=True)
        latency = {"status": fixed_rate_status(stack_, finished, args.rate, args.rate_seconds)}
        status_rows: list[tuple[str, Target, str, Path | None]] = [
            *((t.name, t, _status_url(t, finished), None) for t in stack_.targets),
            ("gateway, job queued (coalesced)", gateway, _status_url(gateway, queued), None),
        ]
        throughput = {"status": saturation(stack_, status_rows, args.seconds, args.connections)}
        print("submits: fixed rate, then saturation", flush=True)
        latency["submit"], stages = fixed_rate_submit(stack_, args.rate, args.rate_seconds)
        submit_rows: list[tuple[str, Target, str, Path | None]] = [
            (t.name, t, f"{t.url}/{INPAINTING}", stack_.body_file) for t in stack_.targets
        ]
        throughput["submit"] = saturation(stack_, submit_rows, args.seconds, args.connections)
    print("Redis round trips", flush=True)
    trips = redis_round_trips(200)

    report = Report(
        command=f".venv/bin/{command}",
        machine=machine(),
        date=datetime.date.today().isoformat(),
        rate=args.rate,
        rate_seconds=args.rate_seconds,
        seconds=args.seconds,
        connections=args.connections,
        coalesce_interval=COALESCE_INTERVAL,
    )
    text = report.render(throughput, latency, stages, polling, trips)
    args.output.write_text(text)
    print(text)
    print(f"written to {args.output}", flush=True)


if __name__ == "__main__":
    main()
