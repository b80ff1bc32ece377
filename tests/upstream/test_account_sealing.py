"""Accounts whose fal key this process cannot open (sealed under another
``GATEWAY_ACCOUNT_SECRET``, or under the admin token before it was rotated, its default)."""

from __future__ import annotations

from tests.jobs import INPAINTING, submit, valid_body
from tests.servers import Emulator, Gateway, RedisServer
from tests.upstream.pool_stack import ONE_KEY, TWO_KEY, accounts


def test_a_new_sealing_secret_reseals_the_accounts_the_environment_names() -> None:
    """After the sealing secret changed (by default the admin token), the accounts the
    environment names are sealed again at start: submits keep working."""
    with Emulator({"keys": f"{ONE_KEY},{TWO_KEY}"}) as emulator, RedisServer() as redis:
        settings = {"fal_key": f"one={ONE_KEY}", "account_secret": "old-secret"}
        with Gateway(redis.url, emulator.url, settings):
            pass
        with Gateway(redis.url, emulator.url, {**settings, "account_secret": "new"}) as gateway:
            token, _ = gateway.new_key()
            with gateway.client(token) as client:
                submit(client, INPAINTING, valid_body(INPAINTING))


def test_an_account_whose_key_cannot_be_opened_keeps_no_slot() -> None:
    """A replica that cannot open an account's key answers 503 and gives the slot back at
    once (held, it would refuse every later job of a hard limit of 1 for ``lease_ttl``)."""
    with Emulator({"keys": f"{ONE_KEY},{TWO_KEY}"}) as emulator, RedisServer() as redis:
        settings = {"fal_key": f"one={ONE_KEY}", "account_secret": "first"}
        with Gateway(redis.url, emulator.url, settings) as first:
            with first.admin() as admin:
                admin.patch("/admin/v1/upstreams/one", json={"weight": 0}).raise_for_status()
                spec = {"name": "two", "key": TWO_KEY, "max_concurrent": 1, "hard_limit": True}
                admin.post("/admin/v1/upstreams", json=spec).raise_for_status()
            other = {**settings, "account_secret": "second"}
            with Gateway(redis.url, emulator.url, other) as second:
                token, _ = first.new_key()
                with second.client(token) as client:
                    refused = client.post(f"/{INPAINTING}", json=valid_body(INPAINTING))
                assert refused.status_code == 503, refused.text
                assert refused.json()["error_type"] == "upstream_account_unreadable"
            assert accounts(first)["two"]["in_flight"] == 0
            with first.client(token) as client:
                submit(client, INPAINTING, valid_body(INPAINTING))


def test_a_submit_goes_on_to_an_account_whose_key_this_replica_can_open() -> None:
    with Emulator({"keys": f"{ONE_KEY},{TWO_KEY}"}) as emulator, RedisServer() as redis:
        settings = {"fal_key": f"one={ONE_KEY}", "account_secret": "first"}
        with Gateway(redis.url, emulator.url, settings) as first, first.admin() as admin:
            spec = {"name": "two", "key": TWO_KEY, "weight": 1000}  # nearly always chosen
            admin.post("/admin/v1/upstreams", json=spec).raise_for_status()
            token, _ = first.new_key()
        # Another secret: "one" (of its environment) is sealed again, "two" stays unreadable.
        with Gateway(redis.url, emulator.url, {**settings, "account_secret": "second"}) as other:
            with other.client(token) as client:
                for _ in range(3):
                    submit(client, INPAINTING, valid_body(INPAINTING))
            assert accounts(other)["two"]["in_flight"] == 0
            assert accounts(other)["one"]["in_flight"] == 3
