"""Fixtures: a real emulator process, a loopback HTTP peer, and clients for them; and the
check that fails a test whose servers logged an error it did not declare."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import httpx
import pytest

from tests.cluster_servers import RedisClusterServers
from tests.peer import Peer
from tests.server_logs import Expectations, begin_test, describe
from tests.servers import Emulator, Gateway, RedisServer, live_servers

FAST_EMULATOR: dict[str, object] = {
    "queue_delay": 0.05,
    "run_time": 0.3,
    "log_interval": 0.1,
    "runners": 4,
    "webhook_retry_scale": 0.001,
    "fault_seed": 7,
}

SetKnobs = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator(FAST_EMULATOR) as running:
        yield running


@pytest.fixture(scope="session")
def fast_emulator() -> Iterator[Emulator]:
    """An emulator with many runners and no waits, for tests that race many jobs."""
    with Emulator(
        {"runners": 16, "queue_delay": 0, "run_time": 0.05, "log_interval": 0}
    ) as emulator:
        yield emulator


@pytest.fixture
def client(emulator: Emulator) -> Iterator[httpx.Client]:
    with emulator.client() as http:
        yield http


@pytest.fixture
def knobs(client: httpx.Client) -> Iterator[SetKnobs]:
    """Change the shared emulator's knobs for one test; they are restored afterwards."""
    before = client.get("/_emulator/knobs").json()

    def set_knobs(**changes: Any) -> dict[str, Any]:
        response = client.patch("/_emulator/knobs", json=changes)
        response.raise_for_status()
        knob_values: dict[str, Any] = response.json()
        return knob_values

    yield set_knobs
    client.patch("/_emulator/knobs", json=before).raise_for_status()


@pytest.fixture(scope="session")
def peer() -> Iterator[Peer]:
    with Peer() as running:
        yield running


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as running:
        yield running


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A Redis Cluster of 3 primaries shared by the tests that run on one (each uses keys or
    teams of its own)."""
    with RedisClusterServers() as running:
        yield running


ONE_NODE, CLUSTER = "one-node", "cluster"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "on_cluster: the module's tests run twice, on one Redis and on the shared Redis Cluster "
        "(through the redis_url and gateway fixtures)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("on_cluster") and (
        "redis_topology" in metafunc.fixturenames
    ):
        metafunc.parametrize("redis_topology", [ONE_NODE, CLUSTER], indirect=True, scope="session")


@pytest.fixture(scope="session")
def redis_topology(request: pytest.FixtureRequest) -> str:
    """``one-node``, or ``cluster`` for the second run of an ``on_cluster`` module."""
    return str(getattr(request, "param", ONE_NODE))


@pytest.fixture(scope="session")
def redis_url(redis_topology: str, request: pytest.FixtureRequest) -> str:
    """The gateway's Redis: the shared server, or the shared cluster."""
    if redis_topology == CLUSTER:
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        return cluster.url
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture(scope="module")
def private_redis_url(redis_topology: str) -> Iterator[str]:
    """A Redis of the module's topology that no other gateway uses: for tests of one process's
    metrics, which another gateway's workers on a shared Redis would take work from."""
    with RedisClusterServers() if redis_topology == CLUSTER else RedisServer() as running:
        yield running.url


@pytest.fixture(scope="session")
def gateway(redis_url: str, emulator: Emulator) -> Iterator[Gateway]:
    with Gateway(redis_url, emulator.url) as running:
        yield running


@pytest.fixture
def caller(gateway: Gateway) -> Iterator[httpx.Client]:
    """A client of the gateway with a fresh key of its own."""
    token, _ = gateway.new_key()
    with gateway.client(token) as http:
        yield http


_CALL_PASSED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_PASSED] = report.passed
    return report


@pytest.fixture(autouse=True)
def server_log(request: pytest.FixtureRequest) -> Iterator[Expectations]:
    """Server logs are part of every test: a traceback or an ERROR line that a live server
    logged during the test fails it, unless declared with ``@pytest.mark.server_log("text")``
    or ``server_log.expect("text")``; a declared text must then really appear."""
    declared = (text for mark in request.node.iter_markers("server_log") for text in mark.args)
    expectations = Expectations(declared)
    begin_test(expectations)
    yield expectations
    failures: list[str] = []
    passed = request.node.stash.get(_CALL_PASSED, False)
    deadline = time.monotonic() + 5  # declared lines may be logged a moment after the test
    while True:
        for server in live_servers():
            undeclared = server.log.check()
            if undeclared:
                failures.append(describe(server.log.name, undeclared))
        missing = expectations.never_seen() if passed else []
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if missing:
        quoted = ", ".join(repr(text) for text in missing)
        failures.append(f"declared server log line never appeared: {quoted}")
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
