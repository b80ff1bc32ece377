"""The pool of fal accounts through the admin API and the CLI: created, listed with live
state, changed, disabled and deleted at run time; bad input refused in fal's shape with
nothing stored; and an account's key never shown, logged, put in a metric or stored readable."""

from __future__ import annotations

import time
from typing import Any

import httpx
import redis

from tests.jobs import INPAINTING, submit, valid_body, wait_status
from tests.servers import Gateway
from tests.upstream.pool_stack import ONE_KEY, TWO_KEY, accounts, fingerprint, pool_stack

NEW_KEY = "three-key-0003:0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def _names(gateway: Gateway) -> list[str]:
    return sorted(accounts(gateway))


def test_accounts_are_managed_at_run_time_and_shared_by_replicas() -> None:
    with pool_stack(2, {"run_time": 2}, {"upstream_refresh_interval": 0.2}) as (_, (a, b)):
        with a.admin() as admin:
            created = admin.post(
                "/admin/v1/upstreams",
                json={"name": "three", "key": NEW_KEY, "weight": 2, "max_concurrent": 5},
            )
            assert created.status_code == 201, created.text
            shown: dict[str, Any] = created.json()
            assert shown["key_fingerprint"] == fingerprint(NEW_KEY)
            assert {k: shown[k] for k in ("name", "weight", "max_concurrent", "state")} == {
                "name": "three",
                "weight": 2,
                "max_concurrent": 5,
                "state": "active",
            }
            assert _names(b) == ["one", "three", "two"]  # the other replica sees it
            off = admin.patch("/admin/v1/upstreams/two", json={"enabled": False}).json()
            assert (off["state"], off["reason"]) == ("disabled", "disabled by the operator")
            admin.patch("/admin/v1/upstreams/three", json={"enabled": False}).raise_for_status()
        # Only "one" takes jobs now, on either replica; a job holds its slot while it runs.
        token, _ = a.new_key()
        with b.client(token) as client:
            job = submit(client, INPAINTING, valid_body(INPAINTING))
            assert accounts(a)["one"]["in_flight"] == 1
            with a.admin() as admin:
                busy = admin.delete("/admin/v1/upstreams/one")
                assert busy.status_code == 409
                assert busy.json()["error_type"] == "conflict"
                wait_status(client, job["status_url"])
                assert client.get(job["response_url"]).status_code == 200
                deadline = time.monotonic() + 10
                while accounts(a)["one"]["in_flight"]:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
                admin.patch("/admin/v1/upstreams/two", json={"enabled": True}).raise_for_status()
                assert admin.delete("/admin/v1/upstreams/three").json() == {
                    "name": "three",
                    "deleted": True,
                }
                assert admin.get("/admin/v1/upstreams/three").status_code == 404
        assert _names(a) == ["one", "two"]


def test_bad_input_is_refused_in_fals_shape_and_nothing_is_stored() -> None:
    with pool_stack() as (_, (gateway,)), gateway.admin() as admin:
        bad: list[dict[str, object]] = [
            {"name": "Bad Name", "key": NEW_KEY},
            {"name": "three"},
            {"name": "three", "key": ""},
            {"name": "three", "key": "has space"},
            {"name": "three", "key": NEW_KEY, "weight": -1},
            {"name": "three", "key": NEW_KEY, "max_concurrent": "many"},
            {"name": "three", "key": NEW_KEY, "colour": "red"},
        ]
        for body in bad:
            response = admin.post("/admin/v1/upstreams", json=body)
            assert response.status_code == 422, body
            detail = response.json()["detail"]
            assert isinstance(detail, list)
            assert {"loc", "msg", "type"} <= set(detail[0])
            assert str(body.get("key") or NEW_KEY) not in response.text  # keys never echoed
        assert admin.post("/admin/v1/upstreams", content=b"{").status_code == 422
        taken = admin.post("/admin/v1/upstreams", json={"name": "one", "key": NEW_KEY})
        assert taken.status_code == 409
        assert admin.patch("/admin/v1/upstreams/one", json={"weight": 5000}).status_code == 422
        assert admin.patch("/admin/v1/upstreams/nope", json={"weight": 1}).status_code == 404
        assert admin.delete("/admin/v1/upstreams/nope").status_code == 404
        assert httpx.get(f"{gateway.url}/admin/v1/upstreams").status_code == 401
        pool = accounts(gateway)
        assert sorted(pool) == ["one", "two"]
        assert {pool[n]["weight"] for n in pool} == {1}


def test_the_cli_manages_accounts_reading_the_key_from_stdin() -> None:
    with pool_stack() as (_, (gateway,)):
        added = gateway.cli(
            "upstreams", "add", "three", "--key-stdin", "--max-concurrent", "3", stdin=NEW_KEY
        )
        assert added.returncode == 0, added.stderr
        assert "three" in added.stdout
        changed = gateway.cli("upstreams", "set", "three", "--weight", "4", "--hard-limit")
        assert changed.returncode == 0, changed.stderr
        listed = gateway.cli("upstreams", "list")
        row = next(line for line in listed.stdout.splitlines() if line.startswith("three"))
        assert row.split()[:2] == ["three", "active"]
        assert accounts(gateway)["three"]["hard_limit"] is True
        assert gateway.cli("upstreams", "disable", "three").returncode == 0
        assert accounts(gateway)["three"]["state"] == "disabled"
        assert gateway.cli("upstreams", "enable", "three").returncode == 0
        assert gateway.cli("upstreams", "remove", "three").returncode == 0
        gone = gateway.cli("upstreams", "show", "three")
        assert gone.returncode != 0
        assert "not found" in gone.stderr.lower()
        for result in (added, changed, listed):
            assert NEW_KEY not in result.stdout + result.stderr


def test_account_keys_never_appear_in_answers_logs_metrics_or_redis() -> None:
    with pool_stack(1, {"run_time": 0.2}) as (_, (gateway,)):
        with gateway.admin() as admin:
            answers = [
                admin.post("/admin/v1/upstreams", json={"name": "three", "key": NEW_KEY}),
                admin.get("/admin/v1/upstreams"),
                admin.get("/admin/v1/upstreams/one"),
                admin.patch("/admin/v1/upstreams/two", json={"key": NEW_KEY + "x"}),
                admin.patch("/admin/v1/upstreams/two", json={"key": TWO_KEY}),
            ]
        token, _ = gateway.new_key()
        with gateway.client(token) as client:
            for _ in range(6):
                job = submit(client, INPAINTING, valid_body(INPAINTING))
                wait_status(client, job["status_url"])
                answers.append(client.get(job["response_url"]))
        answers += [httpx.get(f"{gateway.url}/{path}") for path in ("metrics", "readyz")]
        listed = gateway.cli("upstreams", "list", "--json")
        store = redis.Redis.from_url(gateway.redis_url)
        dump = [
            str(store.hgetall(name) if store.type(name) == b"hash" else store.dump(name))
            for name in store.scan_iter()
        ]
        seen = "\n".join([a.text for a in answers] + [listed.stdout, gateway.output(), *dump])
        assert "one-key-0001" in ONE_KEY  # the part a leak would show
        for key in (ONE_KEY, TWO_KEY, NEW_KEY):
            for part in key.split(":"):
                assert part not in seen


def test_accounts_of_the_environment_cannot_be_deleted_and_come_back_if_redis_loses_them() -> None:
    with pool_stack(1, gateway_settings={"upstream_refresh_interval": 0.2}) as (_, (gateway,)):
        with gateway.admin() as admin:
            refused = admin.delete("/admin/v1/upstreams/one")
        assert refused.status_code == 409
        assert "GATEWAY_FAL_KEY" in refused.json()["detail"]
        redis.Redis.from_url(gateway.redis_url).flushall()
        deadline = time.monotonic() + 10
        while _names(gateway) != ["one", "two"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        token, _ = gateway.new_key()  # the keys went with the flush
        with gateway.client(token) as client:
            submit(client, INPAINTING, valid_body(INPAINTING))


def test_a_key_no_http_header_can_carry_is_refused_and_nothing_is_stored() -> None:
    """Keys an ``Authorization`` header cannot carry are refused (stored, every submit on the
    account would answer 500)."""
    with pool_stack() as (_, (gateway,)), gateway.admin() as admin:
        for key in ("three:sec\u0000ret", "three:s\u00e9cret", "three:sec\u007fret"):
            created = admin.post("/admin/v1/upstreams", json={"name": "three", "key": key})
            assert created.status_code == 422, (key, created.text)
            assert created.json()["detail"][0]["loc"] == ["body", "key"]
            changed = admin.patch("/admin/v1/upstreams/one", json={"key": key})
            assert changed.status_code == 422, (key, changed.text)
        pool = accounts(gateway)
        assert sorted(pool) == ["one", "two"]
        assert pool["one"]["key_fingerprint"] == fingerprint(ONE_KEY)


def test_a_deleted_account_is_not_shown_in_a_state_by_the_metrics_of_several_workers() -> None:
    """With ``workers`` > 1 (the multiprocess metrics directory) a removed series keeps its
    last value there: a deleted account's state series are zeroed first."""
    settings = {"workers": 2, "upstream_refresh_interval": 0.2}
    with pool_stack(1, None, settings) as (_, (gateway,)), gateway.admin() as admin:
        admin.post("/admin/v1/upstreams", json={"name": "three", "key": NEW_KEY}).raise_for_status()
        shown = 'gateway_upstream_account_state{account="three",state="active"} 1.0'
        deadline = time.monotonic() + 10
        while shown not in httpx.get(f"{gateway.url}/metrics").text:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        admin.delete("/admin/v1/upstreams/three").raise_for_status()
        time.sleep(1)  # several refreshes of every worker
        for _ in range(4):  # whichever worker answers
            lines = httpx.get(f"{gateway.url}/metrics").text.splitlines()
            assert [
                line for line in lines if 'account="three"' in line and line.endswith(" 1.0")
            ] == []
