"""Access lines and request fields: on every line logged while a request is handled, in text
(the default) and JSON, and the access line that can be switched off."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway.telemetry import log_context
from gateway.telemetry.access_log import AccessLog
from gateway.telemetry.logs import JsonFormatter, TextFormatter
from tests.jobs import KONTEXT, submit, valid_body, wait_status
from tests.server_logs import record_level
from tests.servers import Emulator, Gateway


def _get(path: str, request_id: str) -> httpx.Response:
    """``path`` answered in this process by an app that logs a line while it handles it."""
    app = AccessLog(Starlette(routes=[Route("/jobs/{job}", _job_page)]), enabled=True)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers={"X-Request-ID": request_id})

    return asyncio.run(call())


async def _job_page(request: Request) -> PlainTextResponse:
    log_context.bind(key_id="k-1", fal_request_id=request.path_params["job"], account="")
    logging.getLogger("gateway.test").warning("looked at the job")
    return PlainTextResponse("ok")


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    """What ``gateway.test`` and ``gateway.access`` log, through the gateway's filter."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(log_context.ContextFilter())
    loggers = [logging.getLogger(name) for name in ("gateway.test", "gateway.access")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield out, handler
    for logger in loggers:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


def test_every_line_of_a_request_carries_its_fields(
    captured: tuple[io.StringIO, logging.Handler],
) -> None:
    out, handler = captured
    handler.setFormatter(JsonFormatter())
    answer = _get("/jobs/j-9", "rid-1")
    assert answer.headers["x-request-id"] == "rid-1"
    inside, access = (orjson.loads(line) for line in out.getvalue().splitlines())
    fields = {"request_id": "rid-1", "key_id": "k-1", "fal_request_id": "j-9"}
    assert inside["message"] == "looked at the job"
    assert fields.items() <= inside.items()
    assert "account" not in inside  # bound empty: left out
    assert fields.items() <= access.items()
    assert (access["method"], access["route"], access["status"]) == ("GET", "/jobs/{job}", 200)
    # Outside a request, nothing is bound and lines carry no request fields.
    log_context.bind(key_id="nobody")
    logging.getLogger("gateway.test").warning("between requests")
    assert "request_id" not in orjson.loads(out.getvalue().splitlines()[-1])


def test_text_lines_end_with_the_request_fields(
    captured: tuple[io.StringIO, logging.Handler],
) -> None:
    out, handler = captured
    handler.setFormatter(TextFormatter())
    _get("/jobs/j-9?secret=s", "rid-2")
    inside, access = out.getvalue().splitlines()
    fields = "[request_id=rid-2 fal_request_id=j-9 key_id=k-1]"
    assert inside.endswith(f"gateway.test: looked at the job {fields}")
    assert re.search(r"gateway.access: GET /jobs/\{job\} 200 [\d.]+ ms \[request_id=rid-2 ", access)
    assert "secret" not in access
    assert record_level(access) == "INFO"


def _line_with(gateway: Gateway, text: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in gateway.output().splitlines() if text in line]
        if found:
            return found[-1]
        assert time.monotonic() < deadline, f"no line with {text!r}"
        time.sleep(0.05)


def test_text_access_lines_of_a_real_gateway(gateway: Gateway, caller: httpx.Client) -> None:
    job = submit(caller, KONTEXT, valid_body(KONTEXT))
    wait_status(caller, job["status_url"])
    poll_id = f"text-poll-{os.urandom(4).hex()}"
    caller.get(job["status_url"], headers={"X-Request-ID": poll_id})
    line = _line_with(gateway, f"request_id={poll_id}")
    assert "INFO gateway.access: GET /{owner}/{app}/requests/{request_id}/status 200 " in line
    assert f"fal_request_id={job['request_id']} " in line
    assert f"endpoint={KONTEXT} " in line
    assert job["request_id"] not in line.split("[", 1)[0]


def test_the_access_log_can_be_switched_off(redis_url: str, emulator: Emulator) -> None:
    with Gateway(redis_url, emulator.url, {"access_log": "false"}) as quiet:
        answer = httpx.get(f"{quiet.url}/healthz", headers={"X-Request-ID": "quiet-1"})
        assert answer.headers["x-request-id"] == "quiet-1"
        quiet.stop()  # its log is then complete
        output = quiet.output()
    assert "Finished server process" in output
    assert "gateway.access" not in output
