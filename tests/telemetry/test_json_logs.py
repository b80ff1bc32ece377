"""JSON logs of a whole run: every line one object, an access line per request with its route
template and the job's ids, and no secret, body or signed token anywhere."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.images import png
from tests.jobs import KONTEXT, valid_body, wait_status
from tests.peer import Peer
from tests.servers import Emulator, Gateway

ACCESS = "gateway.access"
STATUS_ROUTE = "/{owner}/{app}/requests/{request_id}/status"
RESULT_ROUTE = "/{owner}/{app}/requests/{request_id}"
ACCESS_FIELDS = {"time", "level", "logger", "message", "method", "route", "status", "duration_ms"}
TOKEN_SHAPES = [
    re.compile(r"fgw_[a-z0-9-]+_[a-z0-9]{12}_[A-Za-z0-9]{32}"),  # a gateway key
    re.compile(r"whsec_[A-Za-z0-9+/=]{16,}"),  # a webhook secret
    re.compile(r"/(files|storage/upload)/[A-Za-z0-9_-]{20,}"),  # a sealed file or upload link
]

Record = dict[str, Any]


@pytest.fixture(scope="module")
def json_gateway(redis_url: str, emulator: Emulator) -> Iterator[Gateway]:
    with Gateway(redis_url, emulator.url, {"log_format": "json"}) as gateway:
        yield gateway


def records(gateway: Gateway) -> list[Record]:
    """Every whole line the gateway logged, each parsed as a JSON object (or the test fails)."""
    text = gateway.output()
    parsed = []
    for line in text[: text.rfind("\n") + 1].splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(record, dict), line
        parsed.append(record)
    return parsed


def access_lines(
    gateway: Gateway, until: Callable[[list[Record]], bool], timeout: float = 10
) -> list[Record]:
    """The access lines logged so far, once ``until`` holds for them (a line is written just
    after its response is sent)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [record for record in records(gateway) if record["logger"] == ACCESS]
        if until(found):
            return found
        assert time.monotonic() < deadline, found[-5:]
        time.sleep(0.05)


def with_id(request_id: str) -> Callable[[list[Record]], bool]:
    return lambda found: any(record.get("request_id") == request_id for record in found)


def _sign_in(gateway: Gateway, area: str, secret: str) -> None:
    with httpx.Client(base_url=gateway.url) as browser:
        signed_in = browser.post(f"/{area}/signin", data={"secret": secret})
        assert signed_in.status_code in (200, 303), signed_in.text
        assert browser.get(f"/{area}").status_code == 200


def _full_run(gateway: Gateway, peer: Peer, token: str, key_id: str) -> dict[str, Any]:
    """Every kind of call a caller, fal and an operator make; what the run handed out."""
    hook = f"/hooks/json-logs-{os.urandom(4).hex()}"
    with gateway.client(token) as client:
        submitted = client.post(
            f"/{KONTEXT}",
            json=valid_body(KONTEXT),
            params={"fal_webhook": f"{peer.url}{hook}"},
            headers={"X-Request-ID": "json-logs-submit"},
        )
        assert submitted.status_code == 200, submitted.text
        assert submitted.headers["x-request-id"] == "json-logs-submit"
        job = submitted.json()
        wait_status(client, job["status_url"])
        assert client.get(job["status_url"], params={"logs": "1"}).status_code == 200
        link = client.get(job["response_url"]).json()["images"][0]["url"]
        assert httpx.get(link).status_code == 200
        spec = {"file_name": "in.png", "content_type": "image/png"}
        upload_url = client.post("/storage/upload/initiate", json=spec).json()["upload_url"]
        assert httpx.put(upload_url, content=png(8, 8)).status_code == 200
        assert client.post(f"/sync/{KONTEXT}", json=valid_body(KONTEXT)).status_code == 200
        fal_status = f"https://queue.fal.run/{KONTEXT}/requests/{job['request_id']}/status"
        target = {"x-fal-target-url": fal_status}
        assert client.get("/fal/proxy", headers=target).status_code == 200
        assert client.get("/v1/me").status_code == 200
    peer.wait_for_posts(hook, 1)
    gateway.wait_delivery(key_id, "delivered")
    with gateway.admin() as admin:
        for path in ("keys", "teams", "upstreams", "usage"):
            assert admin.get(f"/admin/v1/{path}").status_code == 200, path
    _sign_in(gateway, "console", Gateway.ADMIN_TOKEN)
    _sign_in(gateway, "portal", token)
    wrong = token[:-4] + "AAAA"
    with gateway.client(wrong) as stranger:
        assert stranger.get("/v1/me").status_code == 401
        last = stranger.get("/healthz", headers={"X-Request-ID": "json-logs-last"})
        assert last.headers["x-request-id"] == "json-logs-last"
    return {"job": job, "link": link, "upload_url": upload_url, "wrong": wrong}


def test_a_full_run_logs_json_lines_with_ids_and_without_secrets(
    json_gateway: Gateway, peer: Peer
) -> None:
    token, created = json_gateway.new_key("json-logs")
    key_id = str(created["id"])
    run = _full_run(json_gateway, peer, token, key_id)
    job = run["job"]
    lines = access_lines(json_gateway, with_id("json-logs-last"))

    text = json_gateway.output()
    for secret in (
        Gateway.ADMIN_TOKEN,
        Emulator.KEY,
        token,
        token.rsplit("_", 1)[1],
        run["wrong"].rsplit("_", 1)[1],
        str(created["webhook_secret"]),
        run["link"].split("/files/")[1].split("/")[0],
        run["upload_url"].rsplit("/", 1)[1],
        '"prompt"',
    ):
        assert secret not in text
    for shape in TOKEN_SHAPES:
        assert shape.search(text) is None, shape.search(text)

    for record in records(json_gateway):
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    for line in lines:
        assert line.keys() >= ACCESS_FIELDS, line
        assert re.fullmatch(r"[0-9a-f]{32}|json-logs-[a-z]+", line["request_id"]), line
        assert "?" not in line["route"], line
        assert job["request_id"] not in line["route"], line
    routes = {line["route"] for line in lines}
    assert "unmatched" not in routes  # status polls answered ahead of the router name it too
    assert {
        STATUS_ROUTE,
        RESULT_ROUTE,
        "/{endpoint:path}",
        "/sync/{endpoint:path}",
        "/files/{token}/{name}",
        "/storage/upload/{token}",
        "/webhooks/fal",
        "/fal/proxy",
        "/console/signin",
        "/portal",
    } <= routes

    [submit] = [line for line in lines if line["request_id"] == "json-logs-submit"]
    assert submit["method"] == "POST"
    assert submit["status"] == 200
    assert submit["key_id"] == key_id
    assert submit["team"] == "default"
    assert submit["endpoint"] == KONTEXT
    assert submit["fal_request_id"] == job["request_id"]
    assert submit["account"].startswith("fal-")
    later = [line for line in lines if line.get("fal_request_id") == job["request_id"]]
    assert {line["route"] for line in later} >= {STATUS_ROUTE, RESULT_ROUTE, "/webhooks/fal"}
    polls = [line for line in lines if line["route"] == STATUS_ROUTE]
    assert polls
    assert all(line["fal_request_id"] == job["request_id"] for line in polls)
    assert all(line["key_id"] == key_id and line["endpoint"] == KONTEXT for line in polls)
    [refused] = [line for line in lines if line["status"] == 401]
    assert refused["key_id"] == key_id  # the key named, not its secret


def test_an_unusable_request_id_is_replaced_by_a_new_one(json_gateway: Gateway) -> None:
    answers = [
        httpx.get(f"{json_gateway.url}/healthz", headers=headers)
        for headers in ({}, {"X-Request-ID": "x" * 129}, {"X-Request-ID": "has space"})
    ]
    given = [answer.headers["x-request-id"] for answer in answers]
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in given), given
    assert len(set(given)) == 3
    access_lines(json_gateway, lambda found: all(with_id(rid)(found) for rid in given))


def test_every_worker_logs_json(redis_url: str, emulator: Emulator) -> None:
    settings = {"log_format": "json", "workers": 2}
    with Gateway(redis_url, emulator.url, settings) as gateway:
        token, _ = gateway.new_key()
        for attempt in range(10):
            # A new connection each time, so both workers take some.
            httpx.get(
                f"{gateway.url}/{KONTEXT}/requests/none/status",
                headers={"Authorization": f"Bearer {token}", "X-Request-ID": f"w-{attempt}"},
            )
        ids = [f"w-{n}" for n in range(10)]
        lines = access_lines(gateway, lambda found: all(with_id(rid)(found) for rid in ids))
        started = [r for r in records(gateway) if r["message"].startswith("Started server")]
    assert len(started) == 2  # each worker's, in JSON
    assert {line["route"] for line in lines if line["request_id"].startswith("w-")} == {
        STATUS_ROUTE
    }
