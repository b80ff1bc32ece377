"""What the access log costs one gateway worker: status polls and submits at saturation with it
off, in text and in JSON (``bench/LOGGING.md`` holds a run).

Each setting gets the benchmark's stack of its own (``bench.overhead``); rows are wrk runs as
there, repeated ``--rounds`` times with the settings taken in turn, so that other load on the
machine spreads over all of them. The gateway logs to a file, as the tests' servers do.

    .venv/bin/python -m bench.logging_cost [--seconds 10] [--rounds 2] [--settings off text json]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from bench.overhead import INPAINTING, Target, _finished_request, _status_url, saturation, stack

SETTINGS: dict[str, dict[str, object]] = {
    "off": {"access_log": "false"},
    "text": {"log_format": "text"},
    "json": {"log_format": "json"},
}


def measure(name: str, seconds: float, connections: int) -> dict[str, dict[str, Any]]:
    """Status polls of a finished request, then submits, through a gateway with ``name``'s
    settings."""
    with stack(SETTINGS[name]) as stack_:
        gateway = stack_.targets[-1]
        finished = _finished_request(stack_)
        rows: list[tuple[str, Target, str, Path | None]] = [
            ("status", gateway, _status_url(gateway, finished), None),
            ("submit", gateway, f"{gateway.url}/{INPAINTING}", stack_.body_file),
        ]
        return saturation(stack_, rows, seconds, connections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    args = parser.parse_args()
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for round_ in range(args.rounds):
        for name in args.settings:
            print(f"round {round_ + 1}: access log {name}", flush=True)
            for request, row in measure(name, args.seconds, args.connections).items():
                runs.setdefault((request, name), []).append(row)
    print("| request | access log | requests/s (each round) | gateway CPU per request |")
    print("|---|---|---|---|")
    for (request, name), rows in runs.items():
        rates = ", ".join(f"{row['rps']:,.0f}" for row in rows)
        cpu = statistics.median(row["gateway_cpu"] / row["rps"] * 1e6 for row in rows)
        print(f"| {request} | {name} | {rates} | {cpu:.0f} µs |")


if __name__ == "__main__":
    main()
