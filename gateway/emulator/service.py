"""The emulated fal backend: accepts jobs, runs them on a fixed number of runners, keeps results.

HTTP handlers call this; it knows nothing of HTTP beyond fal's status codes and error bodies.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import random
import time
import uuid
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any

import httpx

from gateway.catalog import Endpoint
from gateway.catalog.pricing import fal_billable_units
from gateway.emulator.files import FileStore, Uploads
from gateway.emulator.inputs import InputFetchError, fetch_input
from gateway.emulator.jobs import Job, JobQueue, JobState, Outcome
from gateway.emulator.render import ImageLoadError, RenderedImage, demo_images, render
from gateway.emulator.signing import WebhookSigner
from gateway.emulator.webhooks import WebhookSender
from gateway.errors import NotFound, ServiceUnavailable
from gateway.settings import EmulatorKnobs, EmulatorSettings
from gateway.upstream.fal_billing import BILLABLE_UNITS_HEADER, units_text

logger = logging.getLogger(__name__)

CANCELLED = Outcome(
    400, {"detail": "Request was cancelled", "error_type": "request_cancelled"}, "request_cancelled"
)
START_TIMEOUT = Outcome(
    504,
    {"detail": "Request timed out before it started", "error_type": "request_timeout"},
    "request_timeout",
    headers={"X-Fal-Request-Timeout-Type": "user"},
)
INJECTED_FAILURE = Outcome(
    500,
    {"detail": "Internal server error", "error_type": "internal_server_error"},
    "internal_server_error",
)


class Emulator:
    """Jobs, runners, files and webhooks of one emulator process."""

    def __init__(
        self, settings: EmulatorSettings, client: httpx.AsyncClient, signer: WebhookSigner
    ) -> None:
        self.settings = settings
        self.knobs: EmulatorKnobs = settings.knobs()
        self.signer = signer
        self.files = FileStore(settings.file_store_bytes)
        for name, content in demo_images().items():
            self.files.pin(f"demo/{name}", content, "image/png")
        self.uploads = Uploads(self.files, settings.result_retention)
        self.webhooks = WebhookSender(client, signer, lambda: self.knobs)
        self.queue = JobQueue(lambda: self.knobs.key_concurrency)
        self._client = client
        self._jobs: dict[tuple[str, str], Job] = {}
        self._rng = random.Random(settings.fault_seed)  # noqa: S311 (fault draws, not security)
        self._background: set[asyncio.Task[Any]] = set()

    async def run(self) -> None:
        """Run the runners until cancelled."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self.settings.runners):
                group.create_task(self._runner())

    async def set_knobs(self, knobs: EmulatorKnobs) -> None:
        """Change the knobs live; runners waiting on a key's limit look again."""
        self.knobs = knobs
        await self.queue.wake()

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    # -- accepting work -------------------------------------------------------------------

    async def submit(
        self,
        endpoint: Endpoint,
        raw_body: bytes,
        base_url: str,
        *,
        account: str,
        webhook_url: str | None = None,
        start_timeout: float | None = None,
        register: bool = True,
    ) -> Job:
        """Validate and enqueue a job of the key fingerprinted ``account``; ``register=False`` for
        sync runs, which have no status."""
        request = endpoint.parse_input(raw_body)
        knobs = self.knobs
        if self._rng.random() < knobs.fail_submit_rate:
            raise ServiceUnavailable(
                "Service temporarily unavailable", status_code=knobs.fail_submit_status
            )
        now = time.monotonic()
        job = Job(
            id=str(uuid.uuid4()),
            endpoint=endpoint,
            request=request,
            base_url=base_url,
            account=account,
            webhook_url=webhook_url,
            start_deadline=None if start_timeout is None else now + start_timeout,
            eligible_at=now + knobs.queue_delay,
        )
        if register:
            self._jobs[(job.app_id, job.id)] = job
        await self.queue.put(job)
        return job

    def find(self, app_id: str, request_id: str, account: str) -> Job:
        """The job ``request_id`` of ``owner/app``, whichever subpath created it, if the key
        fingerprinted ``account`` submitted it (another key's request is as unknown as a
        made-up id, like at fal)."""
        job = self._jobs.get((app_id, request_id))
        if job is None or job.account != account:
            raise NotFound("Request not found")
        return job

    async def cancel(self, job: Job) -> tuple[int, dict[str, Any]]:
        """Cancel per fal: queued jobs leave the queue, running ones are asked to stop."""
        if job.state is JobState.COMPLETED:
            return 400, {"status": "ALREADY_COMPLETED", "detail": "Request already completed"}
        if job.state is JobState.IN_QUEUE and await self.queue.remove(job):
            self._finish(job, CANCELLED)
            return 200, {"status": "OK"}
        job.cancel_requested.set()
        return 202, {"status": "CANCELLATION_REQUESTED"}

    # -- running work ---------------------------------------------------------------------

    async def _runner(self) -> None:
        while True:
            job = await self.queue.take()
            try:
                await self._run(job)
            except Exception:
                logger.exception("job %s crashed in the emulator", job.id)
                if job.state is not JobState.COMPLETED:
                    self._finish(job, INJECTED_FAILURE)
            finally:
                await self.queue.release(job)

    async def _run(self, job: Job) -> None:
        if job.start_deadline is not None and time.monotonic() > job.start_deadline:
            self._finish(job, START_TIMEOUT)
            return
        knobs = self.knobs
        started = time.monotonic()
        job.start()
        job.log("Runner picked up the request")
        production = asyncio.create_task(self._produce(job))
        cancelled = await self._work(job, knobs)
        failed = not cancelled and self._rng.random() < knobs.fail_job_rate
        if cancelled or failed:
            production.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await production
            job.log("Request cancelled" if cancelled else "Runner failed", level="ERROR")
            outcome = CANCELLED if cancelled else INJECTED_FAILURE
            if knobs.failed_run_units:
                units = units_text(Decimal(str(knobs.failed_run_units)))
                outcome = dataclasses.replace(outcome, headers={BILLABLE_UNITS_HEADER: units})
            self._finish(job, outcome)
            return
        outcome = await production
        job.log("Request completed" if outcome.ok else "Request failed")
        elapsed = round(time.monotonic() - started, 3)
        self._finish(job, dataclasses.replace(outcome, inference_time=elapsed))

    async def _work(self, job: Job, knobs: EmulatorKnobs) -> bool:
        """Spend ``run_time`` working, logging as it goes; True when cancelled meanwhile."""
        deadline = time.monotonic() + knobs.run_time
        step = 0
        while (remaining := deadline - time.monotonic()) > 0:
            wait = min(remaining, knobs.log_interval) if knobs.log_interval > 0 else remaining
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.cancel_requested.wait(), timeout=wait)
            if job.cancel_requested.is_set():
                return True
            step += 1
            job.log(f"Inference step {step}")
        return job.cancel_requested.is_set()

    async def _produce(self, job: Job) -> Outcome:
        """Fetch the inputs and render the outputs, or the error fal would give."""
        request = job.request
        limit = self.settings.max_input_bytes
        try:
            image = await fetch_input(self._client, "image_url", request.image_url, limit)
            mask_url = request.inpainting_mask_url()
            mask = (
                None
                if mask_url is None
                else await fetch_input(self._client, "mask_url", mask_url, limit)
            )
            seed = request.seed if request.seed is not None else self._rng.randrange(2**31)
            images = await asyncio.to_thread(render, request, seed, image, mask)
        except (InputFetchError, ImageLoadError) as exc:
            item = {"loc": ["body", exc.field], "msg": exc.message, "type": exc.error_type}
            return Outcome(422, {"detail": [item]}, exc.error_type)
        return Outcome(
            200,
            self._output(job, seed, images),
            headers={BILLABLE_UNITS_HEADER: self._billable_units(job, images)},
        )

    def _billable_units(self, job: Job, images: list[RenderedImage]) -> str:
        """fal's units for the outputs (``catalog.pricing.fal_billable_units``), times the
        endpoint's ``units_factor``."""
        units = sum(fal_billable_units(image.size) for image in images)
        factor = self.knobs.units_factor.get(job.endpoint.id, 1.0)
        return units_text(units * Decimal(str(factor)))

    def _output(self, job: Job, seed: int, images: list[RenderedImage]) -> dict[str, Any]:
        request = job.request
        entries = []
        for index, image in enumerate(images):
            file_name = f"{index}.{image.extension}"
            if request.sync_mode:
                url = f"data:{image.content_type};base64,{base64.b64encode(image.content).decode()}"
            else:
                path = f"outputs/{job.id}/{file_name}"
                self.files.put(
                    path, image.content, image.content_type, self.settings.result_retention
                )
                url = f"{job.base_url}/files/{path}"
            entries.append(
                {
                    "url": url,
                    "width": image.size.width,
                    "height": image.size.height,
                    "content_type": image.content_type,
                    "file_name": file_name,
                    "file_size": len(image.content),
                }
            )
        return {
            "images": entries,
            "timings": {"inference": self.knobs.run_time},
            "seed": seed,
            "has_nsfw_concepts": [False] * len(images),
            "prompt": request.prompt,
        }

    def _finish(self, job: Job, outcome: Outcome) -> None:
        job.complete(outcome)
        key = (job.app_id, job.id)
        if key in self._jobs:
            asyncio.get_running_loop().call_later(
                self.settings.result_retention, self._jobs.pop, key, None
            )
        if job.webhook_url is not None:
            self.spawn(self.webhooks.deliver(job, job.webhook_url, outcome))

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in the background, keeping a reference until it ends."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
