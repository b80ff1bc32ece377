"""Accounts' limits of jobs in flight, across replicas: a hard limit is never over-committed
(the caller gets fal's 429 with an honest ``Retry-After``), a soft one lets fal queue the job
on the least loaded account, and new jobs spread by weight."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.jobs import INPAINTING, submit, valid_body, wait_status
from tests.servers import Gateway
from tests.upstream.pool_stack import ONE, TWO, accounts, emulator_log, pool_stack

FAST_POOL = {"upstream_refresh_interval": 0.2}


def _configure(gateway: Gateway, **fields: object) -> None:
    with gateway.admin() as admin:
        for name in ("one", "two"):
            admin.patch(f"/admin/v1/upstreams/{name}", json=fields).raise_for_status()


def _submit_fingerprints(entries: list[dict[str, object]], status: int = 200) -> Counter[str]:
    return Counter(
        str(e["key_fingerprint"])
        for e in entries
        if e["method"] == "POST" and e["path"] == f"/{INPAINTING}" and e["status"] == status
    )


def _wait_idle(gateway: Gateway) -> None:
    deadline = time.monotonic() + 20
    while any(found["in_flight"] for found in accounts(gateway).values()):
        assert time.monotonic() < deadline, accounts(gateway)
        time.sleep(0.1)


def test_a_hard_limit_is_never_over_committed_across_replicas() -> None:
    with pool_stack(3, {"run_time": 3, "runners": 8}, FAST_POOL) as (emulator, gateways):
        _configure(gateways[0], max_concurrent=2, hard_limit=True)
        token, _ = gateways[0].new_key()
        with gateways[0].admin() as admin:
            balance = admin.get("/admin/v1/teams/default").json()["balance_micros"]

        def attempt(n: int) -> httpx.Response:
            with gateways[n % 3].client(token) as client:
                return client.post(f"/{INPAINTING}", json=valid_body(INPAINTING))

        with ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(attempt, range(24)))
        codes = Counter(answer.status_code for answer in answers)
        assert codes == {200: 4, 429: 20}, codes
        for refused in (a for a in answers if a.status_code == 429):
            assert refused.json()["error_type"] == "rate_limited"
            assert "at its limit" in refused.json()["detail"]
            assert 1 <= int(refused.headers["retry-after"]) <= 30
        assert _submit_fingerprints(emulator_log(emulator)) == {ONE: 2, TWO: 2}
        assert {n: a["in_flight"] for n, a in accounts(gateways[1]).items()} == {
            "one": 2,
            "two": 2,
        }
        with gateways[0].client(token) as client:
            for accepted in (a.json() for a in answers if a.status_code == 200):
                wait_status(client, accepted["status_url"])
                assert client.get(accepted["response_url"]).status_code == 200
            _wait_idle(gateways[2])  # the finisher gave every slot back
            with gateways[0].admin() as admin:
                team = admin.get("/admin/v1/teams/default").json()
                ledger = admin.get("/admin/v1/teams/default/ledger").json()["entries"]
            assert team["reserved_micros"] == 0  # the refused submits were refunded
            charges = [e for e in ledger if e["kind"] == "usage"]
            assert len(charges) == 4
            assert team["balance_micros"] == balance + sum(e["amount_micros"] for e in charges)
            submit(client, INPAINTING, valid_body(INPAINTING))  # room again


def test_soft_limits_let_fal_queue_on_the_least_loaded_account() -> None:
    with pool_stack(1, {"run_time": 2, "runners": 8}, FAST_POOL) as (emulator, (gateway,)):
        _configure(gateway, max_concurrent=2)
        token, _ = gateway.new_key()
        with gateway.client(token) as client:
            jobs = [submit(client, INPAINTING, valid_body(INPAINTING)) for _ in range(8)]
            assert _submit_fingerprints(emulator_log(emulator)) == {ONE: 4, TWO: 4}
            assert {n: a["in_flight"] for n, a in accounts(gateway).items()} == {
                "one": 4,
                "two": 4,
            }
            for job in jobs:
                wait_status(client, job["status_url"])
        _wait_idle(gateway)


def test_new_jobs_spread_by_weight() -> None:
    with pool_stack(1, {"run_time": 0, "queue_delay": 0}) as (emulator, (gateway,)):
        with gateway.admin() as admin:
            admin.patch("/admin/v1/upstreams/one", json={"weight": 3}).raise_for_status()
        token, _ = gateway.new_key()
        with gateway.client(token) as client:
            for _ in range(80):
                submit(client, INPAINTING, valid_body(INPAINTING))
        spread = _submit_fingerprints(emulator_log(emulator))
        assert sum(spread.values()) == 80
        assert 45 <= spread[ONE] <= 75, spread


def test_uploads_take_no_slot_and_are_not_refused_by_full_hard_limits() -> None:
    """An upload holds no slot and costs fal no concurrency: accounts at their hard limits do
    not refuse it."""
    with pool_stack(1, {"run_time": 5, "runners": 4}, FAST_POOL) as (_, (gateway,)):
        _configure(gateway, max_concurrent=1, hard_limit=True)
        token, _ = gateway.new_key()
        with gateway.client(token) as client:
            for _ in range(2):
                submit(client, INPAINTING, valid_body(INPAINTING))
            assert client.post(f"/{INPAINTING}", json=valid_body(INPAINTING)).status_code == 429
            spec = {"content_type": "image/png", "file_name": "in.png"}
            initiated = client.post("/storage/upload/initiate", json=spec)
            assert initiated.status_code == 200, initiated.text
        assert {n: a["in_flight"] for n, a in accounts(gateway).items()} == {"one": 1, "two": 1}
