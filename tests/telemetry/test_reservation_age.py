"""``gateway_reservations_oldest_age_seconds``: how long the oldest unsettled reservation has
been open, counted by the reconciler (the alert on stuck reservations reads it)."""

from __future__ import annotations

import re
import time

import httpx

from tests.jobs import KONTEXT, submit, valid_body
from tests.servers import Emulator, Gateway, RedisServer

GAUGE = re.compile(r"^gateway_reservations_oldest_age_seconds (\S+)$", re.MULTILINE)


def _oldest_age(gateway: Gateway) -> float:
    match = GAUGE.search(httpx.get(f"{gateway.url}/metrics").text)
    assert match is not None
    return float(match[1])


def test_the_age_of_the_oldest_open_reservation_grows_until_it_settles() -> None:
    slow = {"queue_delay": 0, "run_time": 60}
    with (
        RedisServer() as redis,  # its own: no other test's reservations
        Emulator(slow) as emulator,
        Gateway(redis.url, emulator.url, {"reconcile_interval": 0.2}) as gateway,
    ):
        time.sleep(0.5)
        assert _oldest_age(gateway) == 0
        token, _ = gateway.new_key()
        with gateway.client(token) as client:
            submit(client, KONTEXT, valid_body(KONTEXT))
        deadline = time.monotonic() + 15
        while (age := _oldest_age(gateway)) < 2:
            assert time.monotonic() < deadline, f"oldest reservation age stuck at {age}"
            time.sleep(0.2)
        assert age < 60
