"""What fal's answers do to an account, through ``AccountPool.observe`` on a real Redis: a 429
rests it for fal's ``Retry-After`` (or ``UPSTREAM_COOLDOWN``), a refused key disables it with
fal's words, a probe's success brings it back; the key never leaves the pool."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from gateway.errors import RateLimited
from gateway.settings import Settings
from gateway.telemetry.metrics import Metrics
from gateway.upstream.accounts import AccountChange, AccountView
from gateway.upstream.pool import AccountPool, AccountsFull, NoUsableAccount, account_pool
from tests.servers import RedisServer
from tests.store.test_scripts import Scene, run

LOCKED = b'{"detail": "User is locked. Reason: Exhausted balance. Top up your balance."}'


def _settings() -> Settings:
    return Settings(
        fal_key=(SecretStr("main=key-main:s3cr3t"), SecretStr("spare=key-spare:s3cr3t")),
        admin_token=SecretStr("admin"),
        upstream_cooldown=30,
    )


def _state(pool: AccountPool, name: str) -> tuple[str, str]:
    view: AccountView = next(v for v in pool.views() if v.account.name == name)
    return view.state(time.time())


def test_fal_answers_cool_disable_and_restore_an_account() -> None:
    async def body(s: Scene) -> None:
        metrics = Metrics()
        pool = account_pool(_settings(), s.store, s.scripts, metrics)
        await pool.start()
        main = await pool.credential("main")
        assert main.authorization == "Key key-main:s3cr3t"
        assert "s3cr3t" not in repr(main)
        await pool.observe(main, 429, b"", {"retry-after": "5"})
        state, reason = _state(pool, "main")
        assert (state, reason) == ("cooling", "fal answered 429")
        until = next(v for v in pool.views() if v.account.name == "main").health
        assert until is not None
        assert until.until is not None
        assert 3 < until.until - time.time() <= 5
        assert (await pool.lease("r1")).account == "spare"
        await pool.release("spare", "r1")
        spare = await pool.credential("spare")
        await pool.observe(spare, 429, b"", {})  # UPSTREAM_COOLDOWN: 30 s
        with pytest.raises(RateLimited) as resting:  # fal rate-limits all: a 429, not a 503
            await pool.lease("r1")
        assert resting.value.status_code == 429
        assert resting.value.headers["Retry-After"] in {"4", "5"}  # the soonest back: main
        await pool.observe(main, 403, LOCKED, {})
        assert _state(pool, "main") == (
            "disabled",
            "User is locked. Reason: Exhausted balance. Top up your balance.",
        )
        await pool.observe(spare, 401, b"not json", {})
        assert _state(pool, "spare") == ("disabled", "fal answered 401")
        with pytest.raises(NoUsableAccount) as none:
            await pool.lease("r2")
        assert none.value.status_code == 503
        assert none.value.headers["Retry-After"] == "60"  # the probe interval
        assert await pool.restored(main)
        assert _state(pool, "main") == ("active", "")
        assert (await pool.lease("r3")).account == "main"
        state_lines = metrics.exposition()[0].decode()
        assert 'gateway_upstream_account_state{account="spare",state="disabled"} 1.0' in state_lines
        assert "gateway_upstream_accounts_usable 1.0" in state_lines

    with RedisServer() as own:  # the pool is global to a Redis: not the session's
        run(own, body)


def test_a_hard_limit_answers_429_with_retry_after() -> None:
    async def body(s: Scene) -> None:
        pool = account_pool(_settings(), s.store, s.scripts, Metrics())
        await pool.start()
        for name in ("main", "spare"):
            await pool.accounts.update(name, AccountChange(max_concurrent=1, hard_limit=True))
        taken = {(await pool.lease(f"r{n}")).account for n in range(2)}
        assert taken == {"main", "spare"}
        with pytest.raises(AccountsFull) as full:
            await pool.lease("r2")
        assert full.value.status_code == 429
        assert full.value.headers["Retry-After"] == "30"

    with RedisServer() as own:  # the pool is global to a Redis: not the session's
        run(own, body)
