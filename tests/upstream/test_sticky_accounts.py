"""A job stays on the fal account that took it: every later call for it (status, result,
cancel, from any replica) carries that account's key, which fal requires (another account's
key gets 404). Submits go elsewhere only when fal accepted nothing."""

from __future__ import annotations

import time
from collections import defaultdict
from urllib.parse import urlsplit

import httpx
import redis

from gateway.store import redis_keys
from tests.jobs import INPAINTING, submit, valid_body, wait_status
from tests.peer import SilentServer
from tests.servers import Emulator, Gateway, RedisServer, free_port
from tests.upstream.pool_stack import (
    ACCOUNTS,
    ONE,
    ONE_KEY,
    TWO,
    accounts,
    emulator_log,
    env_name,
    pool_stack,
    set_knobs,
)


def _path(url: str) -> str:
    return urlsplit(url).path


def test_every_call_of_a_job_goes_to_the_account_that_took_it_on_every_replica() -> None:
    with pool_stack(2, {"run_time": 0.3, "runners": 4}) as (emulator, (first, second)):
        token, _ = first.new_key()
        with first.client(token) as a, second.client(token) as b:
            jobs = [submit(a, INPAINTING, valid_body(INPAINTING)) for _ in range(12)]
            for job in jobs:  # polled, fetched and cancelled through the other replica
                wait_status(b, _path(job["status_url"]))
                assert b.get(_path(job["response_url"])).status_code == 200
            cancelled = submit(a, INPAINTING, valid_body(INPAINTING))
            assert b.put(_path(cancelled["cancel_url"])).status_code in (200, 202)
        calls: dict[str, set[str]] = defaultdict(set)
        submits: set[str] = set()
        for entry in emulator_log(emulator):
            if entry["method"] == "POST" and entry["path"] == f"/{INPAINTING}":
                submits.add(entry["key_fingerprint"])
            for job in [*jobs, cancelled]:
                if job["request_id"] in entry["path"]:
                    calls[job["request_id"]].add(entry["key_fingerprint"])
    assert submits == {ONE, TWO}  # both accounts took jobs
    assert len(calls) == len(jobs) + 1
    assert all(len(keys) == 1 for keys in calls.values()), calls


def test_a_locked_account_fails_over_unseen_and_comes_back_after_a_top_up() -> None:
    settings = {"upstream_probe_interval": 1, "upstream_refresh_interval": 0.2}
    with pool_stack(1, {"run_time": 0.2}, settings) as (emulator, (gateway,)):
        token, _ = gateway.new_key()
        with gateway.client(token) as client:
            before = [submit(client, INPAINTING, valid_body(INPAINTING)) for _ in range(6)]
            set_knobs(emulator, locked_keys=[ONE])
            seen = len(emulator_log(emulator))
            # Submits keep succeeding; the first one that meets the locked account disables it.
            for _ in range(40):
                submit(client, INPAINTING, valid_body(INPAINTING))
                refused = [e for e in emulator_log(emulator)[seen:] if e["status"] == 403]
                if refused:
                    break
            assert len(refused) == 1
            assert refused[0]["key_fingerprint"] == ONE
            one = accounts(gateway)["one"]
            assert one["state"] == "disabled"
            assert one["reason"].startswith("User is locked. Reason: Exhausted balance")
            ready = httpx.get(f"{gateway.url}/readyz").json()
            assert ready["status"] == "ok"
            assert ready["accounts"]["not_usable"] == {"one": "disabled"}
            # Jobs the locked account took before still finish: fal serves their reads.
            for job in before:
                wait_status(client, job["status_url"])
                assert client.get(job["response_url"]).status_code == 200
            after_lock = len(emulator_log(emulator))
            for _ in range(10):
                submit(client, INPAINTING, valid_body(INPAINTING))
            assert {
                e["key_fingerprint"]
                for e in emulator_log(emulator)[after_lock:]
                if e["method"] == "POST" and e["path"] == f"/{INPAINTING}"
            } == {TWO}
            set_knobs(emulator, locked_keys=[])  # topped up
            deadline = time.monotonic() + 15
            while accounts(gateway)["one"]["state"] != "active":
                assert time.monotonic() < deadline, accounts(gateway)["one"]
                time.sleep(0.2)
            back = len(emulator_log(emulator))
            for _ in range(20):
                submit(client, INPAINTING, valid_body(INPAINTING))
            assert ONE in {
                e["key_fingerprint"]
                for e in emulator_log(emulator)[back:]
                if e["method"] == "POST" and e["status"] == 200
            }


def test_a_timeout_after_the_body_was_sent_is_not_sent_to_another_account(
    redis_server: RedisServer,
) -> None:
    with SilentServer() as silent, RedisServer() as own:
        settings = {"fal_key": ACCOUNTS, "upstream_timeout": 1}
        with Gateway(own.url, silent.url, settings) as gateway:
            token, _ = gateway.new_key()
            with gateway.client(token) as client:
                response = client.post(f"/{INPAINTING}", json=valid_body(INPAINTING))
            assert response.status_code == 504
            assert len(silent.connections()) == 1  # never a second submission
            pool = accounts(gateway)
            assert [pool[name]["in_flight"] for name in ("one", "two")] == [0, 0]


def test_a_refused_connection_is_tried_on_every_account() -> None:
    with RedisServer() as own:
        nowhere = f"http://127.0.0.1:{free_port()}"
        with Gateway(own.url, nowhere, {"fal_key": ACCOUNTS}) as gateway:
            token, _ = gateway.new_key()
            with gateway.client(token) as client:
                response = client.post(f"/{INPAINTING}", json=valid_body(INPAINTING))
            assert response.status_code == 502
            metrics = httpx.get(f"{gateway.url}/metrics").text
            for name in ("one", "two"):
                assert (
                    f'gateway_upstream_errors_total{{account="{name}",kind="unavailable",'
                    'operation="submit"} 1.0'
                ) in metrics


def test_a_request_recorded_before_the_pool_is_served_by_the_first_account(
    gateway: Gateway, caller: httpx.Client, redis_url: str
) -> None:
    job = submit(caller, INPAINTING, valid_body(INPAINTING))
    store = redis.Redis.from_url(redis_url)
    record = redis_keys.request_record("default", job["request_id"])
    assert store.hget(record, "account") == env_name(Emulator.KEY).encode()
    store.hdel(record, "account")
    wait_status(caller, job["status_url"])
    assert caller.get(job["response_url"]).status_code == 200
    assert ONE_KEY not in gateway.output()


def test_sync_runs_and_uploads_fail_over_a_locked_account() -> None:
    with pool_stack(1, {"run_time": 0.1}) as (emulator, (gateway,)):
        with gateway.admin() as admin:  # "one" first, nearly always
            admin.patch("/admin/v1/upstreams/one", json={"weight": 1000}).raise_for_status()
        set_knobs(emulator, locked_keys=[ONE])
        token, _ = gateway.new_key()
        with gateway.client(token) as client:
            ran = client.post(f"/sync/{INPAINTING}", json=valid_body(INPAINTING))
            assert ran.status_code == 200, ran.text
            assert accounts(gateway)["one"]["state"] == "disabled"
            with gateway.admin() as admin:  # the operator enables it: fal's refusal is cleared
                admin.patch("/admin/v1/upstreams/one", json={"enabled": True}).raise_for_status()
            assert accounts(gateway)["one"]["state"] == "active"
            spec = {"content_type": "image/png", "file_name": "in.png"}
            initiated = client.post("/storage/upload/initiate", json=spec)
            assert initiated.status_code == 200, initiated.text
            assert accounts(gateway)["one"]["state"] == "disabled"
        refused = [e for e in emulator_log(emulator) if e["status"] == 403]
        assert [e["path"] for e in refused] == [f"/sync/{INPAINTING}", "/storage/upload/initiate"]
        metrics = httpx.get(f"{gateway.url}/metrics").text
        assert 'gateway_upstream_account_state{account="one",state="disabled"} 1.0' in metrics
        assert "gateway_upstream_accounts_usable 1.0" in metrics
        assert 'gateway_upstream_calls_total{account="two",operation="run"} 1.0' in metrics
