"""Reading ``GATEWAY_REDIS_URL``: one server, or a Sentinel service."""

from __future__ import annotations

import pytest

from gateway.store.address import InvalidRedisUrl, SentinelService, sentinel_service


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://h/1", "unix:///tmp/redis.sock?db=2"]
)
def test_one_server_is_not_a_sentinel_service(url: str) -> None:
    assert sentinel_service(url) is None


def test_the_sentinel_form() -> None:
    assert sentinel_service(
        "redis+sentinel://gw:p%40ss@s1:26380,10.0.0.2,[::1]:26381/cache-main/3"
    ) == SentinelService(
        sentinels=(("s1", 26380), ("10.0.0.2", 26379), ("::1", 26381)),
        service="cache-main",
        db=3,
        username="gw",
        password="p@ss",
    )


def test_defaults_and_tls() -> None:
    service = sentinel_service("rediss+sentinel://:secret@s1/main")
    assert service == SentinelService((("s1", 26379),), "main", 0, None, "secret", tls=True)
    assert service.connection_options() == {"db": 0, "password": "secret", "ssl": True}


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel:///main/0",  # no sentinel
        "redis+sentinel://u:hunter2@s1:26379",  # no service
        "redis+sentinel://u:hunter2@s1:26379/",
        "redis+sentinel://u:hunter2@s1:99999/main",  # port out of range
        "redis+sentinel://u:hunter2@s1:port/main",
        "redis+sentinel://u:hunter2@s1/main/zero",  # database not a number
    ],
)
def test_an_unreadable_sentinel_url_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(InvalidRedisUrl) as refused:
        sentinel_service(url)
    assert "hunter2" not in str(refused.value)
