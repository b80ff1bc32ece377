"""Profile one gateway worker under wrk load with py-spy, and print where its CPU goes.

Runs the benchmark's stack (``bench.overhead``), saturates either status polls of a finished
request or submits, records the gateway process with py-spy meanwhile, and prints the functions
with the most samples on top of the stack (self time). Needs root or ptrace permission.

    .venv/bin/python -m bench.profile status|submit [--seconds 8] [--top 30]
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.overhead import INPAINTING, _finished_request, _knobs, _status_url, stack
from bench.tools import wrk


def top_frames(raw: Path, limit: int) -> list[tuple[float, str]]:
    """The frames with the most self samples in py-spy's raw (collapsed stacks) output."""
    samples: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack_, count = line.rsplit(" ", 1)
        samples[stack_.split(";")[-1]] += int(count)
        total += int(count)
    return [(count / total, frame) for frame, count in samples.most_common(limit)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("request", choices=["status", "submit"])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    spy = str(Path(sys.executable).with_name("py-spy"))
    with stack() as stack_, tempfile.TemporaryDirectory(prefix="bench-profile-") as directory:
        finished = _finished_request(stack_)
        _knobs(stack_.emulator, queue_delay=86400)
        gateway = stack_.targets[-1]
        assert stack_.gateway.process is not None
        raw = Path(directory) / "profile.txt"
        record = [spy, "record", "--pid", str(stack_.gateway.process.pid), "--rate", "500"]
        recording = subprocess.Popen(
            [*record, "--format", "raw", "--duration", f"{args.seconds + 1:g}", "-o", str(raw)]
        )
        time.sleep(0.5)
        if args.request == "status":
            url, body = _status_url(gateway, finished), None
        else:
            url, body = f"{gateway.url}/{INPAINTING}", stack_.body_file
        figures = wrk(
            url,
            seconds=args.seconds,
            connections=32,
            authorization=gateway.authorization,
            body_file=body,
        )
        recording.wait()
        print(f"{args.request}: {figures['rps']:,.0f} requests/s under the profiler")
        for share, frame in top_frames(raw, args.top):
            print(f"{share:6.1%}  {frame}")


if __name__ == "__main__":
    main()
