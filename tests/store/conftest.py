"""A primary and its replica, for the failover tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.servers import RedisServer
from tests.store.replication import replica_of, wait_replicated


@pytest.fixture
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    """A primary and its replica, in sync."""
    with ExitStack() as stack:
        primary = stack.enter_context(RedisServer())
        replica = stack.enter_context(replica_of(primary))
        wait_replicated(primary, replica)
        yield primary, replica
