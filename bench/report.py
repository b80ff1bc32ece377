"""``bench/RESULTS.md``: the overhead benchmark's figures, ratios and targets as Markdown."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bench.loadgen import Run


class Polling(Protocol):
    @property
    def clients(self) -> str: ...
    @property
    def jobs(self) -> int: ...
    @property
    def polls(self) -> int: ...
    @property
    def upstream_calls(self) -> int: ...
    @property
    def run_seconds(self) -> float: ...


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


@dataclass(frozen=True)
class Report:
    command: str
    machine: str
    date: str
    rate: float
    rate_seconds: float
    seconds: float
    connections: int
    coalesce_interval: float

    def render(
        self,
        throughput: Mapping[str, Mapping[str, Mapping[str, Any]]],
        latency: Mapping[str, Mapping[str, Run]],
        stages: Mapping[str, float],
        polling: Sequence[Polling],
        round_trips: Mapping[str, float],
    ) -> str:
        lines = [
            "# Benchmark results",
            "",
            "Written by `make bench`; every figure below comes from the one run described here.",
            "",
            f"Command: `{self.command}`",
            f"Machine: {self.machine}.",
            f"Date: {self.date}.",
            "",
            "Three ways to the same emulator, all on loopback: **direct**; through **nginx**",
            "`proxy_pass` (keep-alive upstream, one worker: the floor any proxy pays); through the",
            "**gateway** (one worker; the caller's key checked, admission with rate limits, credit",
            "reservation and caps, request ownership, URLs rewritten, metrics). Load generator,",
            "servers and Redis share the machine's cores, so absolute figures are low; the ratios",
            "are the point.",
            "",
            *self._targets(throughput, latency, polling),
            *self._throughput(throughput),
            *self._latency(latency),
            *self._stages(stages),
            *self._polling(polling),
            *self._round_trips(round_trips),
        ]
        return "\n".join(lines) + "\n"

    def _targets(
        self,
        throughput: Mapping[str, Mapping[str, Mapping[str, Any]]],
        latency: Mapping[str, Mapping[str, Run]],
        polling: Sequence[Polling],
    ) -> list[str]:
        submit = latency["submit"]
        added_p50 = submit["gateway"].latency(50) - submit["direct"].latency(50)
        added_p99 = submit["gateway"].latency(99) - submit["direct"].latency(99)
        state = throughput["status"]["gateway"]
        state_rps = state["rps"]
        worst = max(polling, key=lambda p: p.upstream_calls / p.jobs / self._bound(p))
        per_job = worst.upstream_calls / worst.jobs
        return [
            "## Targets",
            "",
            "| target | required | measured | |",
            "|---|---|---|---|",
            f"| submit, added p50 latency at {self.rate:g} req/s, one worker | ≤ 1 ms | "
            f"{_ms(added_p50)} | {_met(added_p50 <= 0.001)} |",
            f"| submit, added p99 latency at {self.rate:g} req/s, one worker | ≤ 5 ms | "
            f"{_ms(added_p99)} | {_met(added_p99 <= 0.005)} |",
            "| status polls answered from the gateway's state, per worker | ≥ 5,000/s | "
            f"{state_rps:,.0f}/s (the worker busy {state['gateway_cpu']:.0%} of a core) | "
            f"{_met(state_rps >= 5000)} |",
            f"| upstream status calls per job, whatever the poll rate | ≤ 1 per "
            f"{self.coalesce_interval:g} s interval (≤ {self._bound(worst):g} for a "
            f"{worst.run_seconds:g} s job) | {per_job:.2f} (worst case: {worst.clients}) | "
            f"{_met(per_job <= self._bound(worst))} |",
            "",
            "Added latency is the gateway's percentile minus the direct run's, at the same rate in",
            "the same run.",
            "",
        ]

    def _bound(self, run: Polling) -> float:
        """Calls a job may cost: one per interval of its run, plus the poll that sees it end
        before the webhook does."""
        return math.ceil(run.run_seconds / self.coalesce_interval) + 1

    def _throughput(self, throughput: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
        lines = [
            "## Throughput at saturation",
            "",
            f"wrk, one thread, {self.connections} connections, {self.seconds:g} s per row. Status",
            "polls ask for a finished request (the gateway answers from its state) and, in the",
            "last status row, for a queued one (the gateway shares one call to fal per interval",
            "between all polls). Submits post the same inpainting body with URL inputs; the",
            "emulator only queues them, and is restarted empty before each submit row. The CPU"
            " columns are shares of one core: the gateway",
            "worker's, and wrk's own (wrk well below a full core was not what limited a row).",
            "",
            "| request | via | requests/s | p50 | p99 | errors | ÷ direct | ÷ nginx | gateway"
            " CPU | wrk CPU |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for kind, rows in throughput.items():
            direct, nginx = rows["direct"]["rps"], rows["nginx"]["rps"]
            for via, row in rows.items():
                errors = row["socket_errors"] + row["non_2xx"]
                lines.append(
                    f"| {kind} | {via} | {row['rps']:,.0f} | {row['p50_us'] / 1000:.2f} ms | "
                    f"{row['p99_us'] / 1000:.2f} ms | {errors} | {row['rps'] / direct:.2f} | "
                    f"{row['rps'] / nginx:.2f} | "
                    f"{format(row['gateway_cpu'], '.0%') if 'gateway_cpu' in row else ''} | "
                    f"{row['wrk_cpu']:.0%} |"
                )
        return [*lines, ""]

    def _latency(self, latency: Mapping[str, Mapping[str, Run]]) -> list[str]:
        lines = [
            f"## Latency at {self.rate:g} requests/s",
            "",
            f"`bench/loadgen.py`, open loop: {self.rate:g} requests/s for {self.rate_seconds:g} s",
            "per row, each timed from its scheduled start (so stalls are not hidden); the emulator"
            " is restarted empty before each submit row. The last",
            "columns are the generator's own: how late it started requests (p99) and the share",
            "of a core it used; both small means the generator was not what limited the run.",
            "",
            "| request | via | p50 | p99 | added p50 (vs direct / nginx) | added p99 (vs direct"
            " / nginx) | failed | generator lag p99 | generator CPU |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for kind, rows in latency.items():
            direct, nginx = rows["direct"], rows["nginx"]
            for via, run in rows.items():
                added = (
                    f"{_ms(run.latency(50) - direct.latency(50))} / "
                    f"{_ms(run.latency(50) - nginx.latency(50))}",
                    f"{_ms(run.latency(99) - direct.latency(99))} / "
                    f"{_ms(run.latency(99) - nginx.latency(99))}",
                )
                lines.append(
                    f"| {kind} | {via} | {_ms(run.latency(50))} | {_ms(run.latency(99))} | "
                    f"{added[0] if via != 'direct' else '-'} | "
                    f"{added[1] if via != 'direct' else '-'} | {run.failed} | "
                    f"{_ms(run.lag(99))} | {run.cpu_seconds / run.seconds:.0%} |"
                )
        return [*lines, ""]

    def _stages(self, stages: Mapping[str, float]) -> list[str]:
        lines = [
            f"### Where a submit's time goes in the gateway at {self.rate:g} requests/s",
            "",
            "Means of the gateway's own timers (its Prometheus histograms) over the gateway's",
            "fixed-rate submit run above.",
            "",
            "| stage | mean |",
            "|---|---|",
        ]
        lines += [f"| {stage} | {_ms(seconds)} |" for stage, seconds in stages.items()]
        whole, *parts = stages.values()
        lines += [
            "| the rest: binding fal's id (one Redis round trip), reading, checking and pricing"
            f" the body, rewriting the answer | {_ms(whole - sum(parts))} |",
            "",
        ]
        return lines

    def _polling(self, polling: Sequence[Polling]) -> list[str]:
        lines = [
            "## Status calls that reach fal per job",
            "",
            "Jobs submitted through the gateway run for the stated time in the emulator; each is",
            "polled through the gateway until a poll sees COMPLETED. Calls to fal are counted in",
            "the emulator's request log. Polls of one job within the coalescing interval "
            f"({self.coalesce_interval:g} s) share one call; once fal's webhook has told the",
            "gateway the job finished, polls are answered without calling fal at all.",
            "",
            "| clients | jobs | job runs | polls per job | calls to fal per job | bound |",
            "|---|---|---|---|---|---|",
        ]
        for run in polling:
            lines.append(
                f"| {run.clients} | {run.jobs} | {run.run_seconds:g} s | "
                f"{run.polls / run.jobs:.1f} | {run.upstream_calls / run.jobs:.2f} | "
                f"{self._bound(run):g} |"
            )
        return [*lines, ""]

    def _round_trips(self, round_trips: Mapping[str, float]) -> list[str]:
        return [
            "## Redis round trips per request",
            "",
            "Counted by a TCP proxy between the gateway and Redis (`bench/redis_round_trips.py`):",
            "a burst of commands and its reply is one, so a pipeline or a script counts once.",
            "",
            "| request | round trips | what they are |",
            "|---|---|---|",
            f"| submit | {round_trips['submit']:.2f} | `admit.lua` before fal is called (key, "
            "policy versions, rate limits, lease, credit, caps); then one pipeline binding the "
            "id fal assigned to the reservation and recording its owner |",
            f"| status poll | {round_trips['status_poll']:.2f} | one pipeline: the key's record "
            "and the request's record (which holds its final status once known) |",
            "",
            "The binding cannot join admission: fal assigns the request id only after the",
            "gateway has reserved credit and forwarded the job, and a status poll may arrive the",
            "moment the caller has the id, so it is written before the caller is answered.",
        ]
