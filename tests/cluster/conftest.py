"""The gateway on the shared local Redis Cluster (3 primaries)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster_servers import RedisClusterServers
from tests.servers import Emulator, Gateway


@pytest.fixture(scope="session")
def cluster_gateway(redis_cluster: RedisClusterServers, emulator: Emulator) -> Iterator[Gateway]:
    with Gateway(redis_cluster.url, emulator.url) as running:
        yield running
