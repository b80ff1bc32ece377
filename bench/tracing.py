"""What tracing costs a gateway worker: CPU per request with tracing off (no ``OTEL_*``
variables, as shipped), on (OTLP over HTTP to a local sink that discards) and on with one trace
in ten sampled, and, given the source of an earlier version (``--before``), the same without any
tracing code.

redis-server, the emulator and one gateway process per mode on loopback; wrk saturates status
polls of a finished request (answered from the gateway's state) and submits (the emulator only
queues them). Modes take turns, ``--rounds`` times, so that other work on the machine falls on
all of them alike; the medians are printed as a Markdown table.

    git archive main gateway | tar -x -C /tmp/main-src
    .venv/bin/python -m bench.tracing --before /tmp/main-src [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.overhead import Stack, Target, _finished_request, _status_url, saturation
from tests.servers import Emulator, Gateway, RedisServer

INPAINTING_BODY = {
    "prompt": "a red fox in the snow",
    "image_url": "{emulator}/files/demo/photo.png",
    "mask_url": "{emulator}/files/demo/mask.png",
}


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that reads each export and answers 200."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextlib.contextmanager
def otlp_sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def modes(before: Path | None, sink: str) -> dict[str, dict[str, str]]:
    """Each mode's environment beyond the gateway's settings."""
    on = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink, "OTEL_SERVICE_NAME": "bench"}
    sampled = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    found = {"off": {}, "on (OTLP/HTTP)": on, "on, 10% of traces sampled": on | sampled}
    if before is not None:
        found = {"before (no tracing code)": {"PYTHONPATH": str(before)}, **found}
    return found


def measure(
    redis: RedisServer, emulator: Emulator, env: dict[str, str], body: Path, seconds: float
) -> dict[str, dict[str, Any]]:
    """Status and submit rows through one gateway started with ``env``."""
    # The inputs are URLs: each submit reads their size, at most 8 per key at once by default.
    settings = {"workers": 1, "reconcile_after": 86400, "input_probe_per_key": 64}
    emulator.stop()  # the submit row of the mode before left it queueing jobs for ever
    emulator.start()
    with Gateway(redis.url, emulator.url, settings, extra_env=env) as gateway:
        token, _ = gateway.new_key("bench")
        target = Target("gateway", gateway.url, f"Bearer {token}")
        stack = Stack([target], gateway, emulator, redis, body)
        request_id = _finished_request(stack)
        rows = [
            ("status", target, _status_url(target, request_id), None),
            ("submit", target, f"{gateway.url}/fal-ai/flux-lora/inpainting", body),
        ]
        results = saturation(stack, rows, seconds, connections=32)
    for figures in results.values():
        figures["cpu_us"] = figures["gateway_cpu"] * 1e6 / figures["rps"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="source tree of the version to compare to")
    parser.add_argument("--seconds", type=float, default=10.0, help="each saturation run")
    parser.add_argument("--rounds", type=int, default=3, help="turns of every mode")
    args = parser.parse_args()
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(RedisServer())
        emulator = stack.enter_context(Emulator({"runners": 32, "queue_delay": 0}))
        sink = stack.enter_context(otlp_sink())
        directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-"))
        body = Path(directory) / "submit.json"
        body.write_text(
            json.dumps({k: v.format(emulator=emulator.url) for k, v in INPAINTING_BODY.items()})
        )
        for _ in range(args.rounds):
            for mode, env in modes(args.before, sink).items():
                for row, run in measure(redis, emulator, env, body, args.seconds).items():
                    runs.setdefault((mode, row), []).append(run)
    print("| request | mode | requests/s | gateway CPU µs per request | p50 | p99 | non-2xx |")
    print("|---|---|---|---|---|---|---|")
    for (mode, row), figures in sorted(runs.items(), key=lambda item: item[0][1]):
        rps = statistics.median(f["rps"] for f in figures)
        cpu = statistics.median(f["cpu_us"] for f in figures)
        p50 = statistics.median(f["p50_us"] for f in figures) / 1000
        p99 = statistics.median(f["p99_us"] for f in figures) / 1000
        failed = sum(f["non_2xx"] + f["socket_errors"] for f in figures)
        latency = f"{p50:.2f} ms | {p99:.2f} ms"
        print(f"| {row} | {mode} | {rps:,.0f} | {cpu:.0f} | {latency} | {failed} |")


if __name__ == "__main__":
    main()
