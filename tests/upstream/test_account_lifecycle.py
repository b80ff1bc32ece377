"""An account's jobs outlive changes to the pool: a key taken out of ``GATEWAY_FAL_KEY`` keeps
its jobs, and a deleted account's key still serves the results of the jobs it ran."""

from __future__ import annotations

import time

from tests.jobs import INPAINTING, submit, valid_body, wait_status
from tests.servers import Emulator, Gateway, RedisServer
from tests.upstream.pool_stack import (
    ONE_KEY,
    TWO,
    TWO_KEY,
    accounts,
    emulator_log,
    env_name,
    pool_stack,
)


def test_taking_a_key_out_of_the_environment_does_not_move_jobs_to_another_key() -> None:
    """Bare ``GATEWAY_FAL_KEY`` entries are named by their key, not their place: dropping k1
    (say, a locked account) leaves the job k1 took with k1, instead of handing its name to k2
    (whose key fal would answer 404 for the job, refunded as lost though fal ran it)."""
    emulator_settings = {"keys": f"{ONE_KEY},{TWO_KEY}", "run_time": 0.5}
    with Emulator(emulator_settings) as emulator, RedisServer() as redis:
        with Gateway(redis.url, emulator.url, {"fal_key": f"{ONE_KEY},{TWO_KEY}"}) as first:
            with first.admin() as admin:
                second_account = f"/admin/v1/upstreams/{env_name(TWO_KEY)}"
                admin.patch(second_account, json={"weight": 0}).raise_for_status()
            token, _ = first.new_key()
            with first.client(token) as client:
                job = submit(client, INPAINTING, valid_body(INPAINTING))
        with (
            Gateway(redis.url, emulator.url, {"fal_key": TWO_KEY}) as second,
            second.client(token) as client,
        ):
            wait_status(client, job["status_url"].replace(first.url, second.url))
            result = client.get(job["response_url"].replace(first.url, second.url))
            assert result.status_code == 200


def test_a_job_finished_on_a_deleted_account_keeps_its_result() -> None:
    """A job gives its slot back when it ends, so its account may be deleted at once; the
    caller, charged for the job, still fetches its result (fal keeps it, under that key), and
    the name stays taken while such results may be fetched."""
    only_two = {"fal_key": f"two={TWO_KEY}"}
    with pool_stack(1, {"run_time": 0.2}, only_two) as (emulator, (gateway,)):
        with gateway.admin() as admin:
            added = {"name": "three", "key": ONE_KEY}
            admin.post("/admin/v1/upstreams", json=added).raise_for_status()
            admin.patch("/admin/v1/upstreams/two", json={"weight": 0}).raise_for_status()
        token, _ = gateway.new_key()
        with gateway.client(token) as client, gateway.admin() as admin:
            job = submit(client, INPAINTING, valid_body(INPAINTING))
            wait_status(client, job["status_url"])
            deadline = time.monotonic() + 10
            while accounts(gateway)["three"]["in_flight"]:  # its end seen: the slot given back
                assert time.monotonic() < deadline
                time.sleep(0.1)
            admin.patch("/admin/v1/upstreams/two", json={"weight": 1}).raise_for_status()
            assert admin.delete("/admin/v1/upstreams/three").status_code == 200
            assert sorted(accounts(gateway)) == ["two"]
            assert admin.get("/admin/v1/upstreams/three").status_code == 404
            assert admin.patch("/admin/v1/upstreams/three", json={"weight": 2}).status_code == 404
            assert client.get(job["response_url"]).status_code == 200
            again = admin.post("/admin/v1/upstreams", json={"name": "three", "key": TWO_KEY})
            assert again.status_code == 409
            assert "deleted upstream account keeps this name" in again.json()["detail"]
            # Never chosen again: every new job goes to "two".
            seen = len(emulator_log(emulator))
            for _ in range(5):
                submit(client, INPAINTING, valid_body(INPAINTING))
            submits = [e for e in emulator_log(emulator)[seen:] if e["method"] == "POST"]
            assert {e["key_fingerprint"] for e in submits} == {TWO}
