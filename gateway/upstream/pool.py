"""The pool of fal accounts at run time: which account a new job goes to, the key of the
account a job is on, and what fal's answers say of an account's health.

Choosing is one script in Redis (``pick_account.lua``), so limits hold across every replica.
Everything else reads a copy of the pool each process refreshes every
``upstream_refresh_interval`` (and at once when it meets an account it does not know).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from gateway.errors import FalError, RateLimited, ServiceUnavailable, StoreUnavailable
from gateway.settings import Settings
from gateway.store.account_scripts import AccountScripts, Unavailable
from gateway.store.multiplexed import Store
from gateway.store.scripts import Scripts
from gateway.telemetry.metrics import Metrics
from gateway.upstream.accounts import (
    KEY_CONTEXT,
    STATES,
    AccountStore,
    AccountView,
    env_accounts,
    fingerprint,
)
from gateway.upstream.failures import CallFailures
from gateway.web import jsoncodec
from gateway.web.sealing import Sealer

logger = logging.getLogger(__name__)

REFUSED_STATUSES = frozenset({401, 402, 403})
"""fal refusing the key itself: invalid, revoked, or the account locked (exhausted balance)."""
_REASON_LIMIT = 200


@dataclass(frozen=True)
class Credential:
    """A fal account's name and the ``Authorization`` header its calls carry."""

    account: str
    fingerprint: str
    authorization: str = field(repr=False)


class AccountsFull(RateLimited):
    """Every usable account is at a hard limit."""


class NoUsableAccount(ServiceUnavailable):
    """No account may take a job: all disabled, cooling down or drained."""

    error_type = "upstream_unavailable"


class AccountGone(FalError):
    """The account a job ran on was deleted from the pool."""

    status_code = 410
    error_type = "upstream_account_removed"


def refusal_reason(status: int, body: bytes) -> str:
    """fal's own words for refusing a key (its ``detail``), short; else its status."""
    try:
        detail = jsoncodec.loads(body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, str) and detail.strip():
        return detail.strip()[:_REASON_LIMIT]
    return f"fal answered {status}"


class AccountPool:
    """Each process's view of the pool, and the calls that change it."""

    def __init__(
        self,
        accounts: AccountStore,
        scripts: AccountScripts,
        settings: Settings,
        metrics: Metrics,
        failures: CallFailures,
    ) -> None:
        self._accounts = accounts
        self.failures = failures
        self._scripts = scripts
        self._settings = settings
        self._metrics = metrics
        self._views: dict[str, AccountView] = {}
        """Every account as last read, deleted ones included (their keys serve their jobs)."""
        self._live: dict[str, AccountView] = {}
        self._seeded = False
        self._shown: set[str] = set()
        self._credentials: dict[str, Credential] = {}
        """By sealed key: opening one costs an AES-GCM decryption, done once per key."""
        seeded = [name for name, _ in env_accounts(settings.fal_key)]
        self._env_names = frozenset(seeded)
        self._default = seeded[0] if seeded else ""

    @property
    def accounts(self) -> AccountStore:
        return self._accounts

    async def start(self) -> None:
        """Seed the accounts ``GATEWAY_FAL_KEY`` names and read the pool; with Redis down,
        the refresh loop does both once it is back (and seeds again any it finds missing)."""
        with contextlib.suppress(StoreUnavailable):
            await self.refresh()

    async def refresh(self) -> None:
        """Read the pool again, seeding the accounts of ``GATEWAY_FAL_KEY`` that are missing,
        and show it in the metrics; pass on the failed calls counted since the last time."""
        await self.failures.flush()
        every = await self._accounts.views(deleted=True)
        live = {view.account.name for view in every if view.account.deleted_at is None}
        if not self._seeded or not self._env_names <= live:
            # At start (keys rotated in the setting, or sealed under another secret, are
            # replaced then, not at every read: replicas of a rolling change would take turns),
            # and whenever Redis lost them (a flush, a failover that lost writes).
            await self._accounts.seed(self._settings.fal_key)
            self._seeded = True
            every = await self._accounts.views(deleted=True)
        views = [view for view in every if view.account.deleted_at is None]
        now = time.time()
        await self._accounts.purge(every, now)
        # Deleted accounts are kept for their jobs' reads (``credential``), never shown.
        self._views = {view.account.name: view for view in every}
        self._live = {view.account.name: view for view in views}
        if len(self._credentials) > 4 * len(every) + 16:
            self._credentials.clear()
        usable = 0
        for view in views:
            name = view.account.name
            state = view.state(now)[0]
            usable += view.usable(now)
            self._metrics.account_in_flight.labels(name).set(view.in_flight)
            for known in STATES:
                self._metrics.account_state.labels(name, known).set(1 if known == state else 0)
        self._metrics.accounts_usable.set(usable)
        for gone in self._shown - self._live.keys():  # deleted: their series go too
            # Zeroed first: with several workers a removed series keeps its last value in the
            # multiprocess directory, so a deleted account would still show in its state.
            self._metrics.account_in_flight.labels(gone).set(0)
            self._metrics.account_in_flight.remove(gone)
            for known in STATES:
                self._metrics.account_state.labels(gone, known).set(0)
                self._metrics.account_state.remove(gone, known)
        self._shown = set(self._live)

    def views(self) -> list[AccountView]:
        """The pool's accounts as last read (not the deleted ones)."""
        return list(self._live.values())

    async def lease(self, reservation_id: str, exclude: Collection[str] = ()) -> Credential:
        """The account a job goes to, holding one of its slots until the job ends
        (``release``); ``AccountsFull`` (429) or ``NoUsableAccount`` (503) when none may."""
        chosen = await self._scripts.pick(reservation_id, exclude)
        if isinstance(chosen, Unavailable):
            raise self._unavailable(chosen)
        try:
            return self._credential(chosen.name, chosen.sealed_key)
        except FalError:  # its key cannot be opened here: the job never holds the slot
            await self.release(chosen.name, reservation_id)
            raise

    async def delete(self, name: str) -> None:
        """Delete an account, unless this replica's ``GATEWAY_FAL_KEY`` seeds it (it would come
        back at once)."""
        if name in self._env_names:
            raise FalError(
                f"Account {name} is seeded from GATEWAY_FAL_KEY: take it out of that setting on "
                "every replica first, or disable it",
                status_code=409,
                error_type="conflict",
            )
        await self._accounts.delete(name)
        await self.refresh()

    async def release(self, account: str, reservation_id: str) -> None:
        """Give back the slot a job held on ``account`` (nothing when it held none)."""
        if account:
            await self._scripts.release(account, reservation_id)

    async def release_everywhere(self, reservation_id: str) -> None:
        """Give back a slot held for ``reservation_id`` on any account (a job whose account
        was never recorded: its process died between choosing and binding)."""
        for name in list(self._views):
            await self._scripts.release(name, reservation_id)

    async def credential(self, account: str) -> Credential:
        """The key of the account a job is on; jobs recorded before the pool existed are on
        the first account of ``GATEWAY_FAL_KEY``."""
        name = account or self._default
        view = self._views.get(name)
        if view is None:
            await self.refresh()
            view = self._views.get(name)
        if view is None:
            raise AccountGone(
                f"The fal account this request ran on ({name or 'none'}) was removed from the "
                "gateway"
            )
        return self._credential(name, view.account.key)

    async def observe(
        self, credential: Credential, status: int, body: bytes, headers: Mapping[str, str]
    ) -> None:
        """What fal's answer says of the account: a refused key disables it, a 429 cools it."""
        if status in REFUSED_STATUSES:
            reason = refusal_reason(status, body)
            await self._change_health(
                "refused", credential, reason, f"disabled: fal refused its key ({reason})"
            )
        elif status == 429:
            until = time.time() + _retry_after(headers, self._settings.upstream_cooldown)
            moment = time.strftime("%H:%M:%S", time.gmtime(until))
            await self._change_health(
                "cooling",
                credential,
                f"{until:.3f}",
                f"cooling down until {moment}: fal answered 429",
            )

    def failed(self, account: str) -> None:
        """A call on ``account`` failed (counted for the console's accounts page)."""
        self.failures.count(account)

    async def restored(self, credential: Credential) -> bool:
        """A probe saw fal accept the key of a refused account again: enable it."""
        return await self._change_health(
            "restored", credential, "", "enabled again: fal accepts its key"
        )

    async def _change_health(
        self, change: str, credential: Credential, detail: str, what: str
    ) -> bool:
        """Record what fal said of the account (``account_health.lua``); when that changed its
        state, say ``what`` happened in the log and read the pool again."""
        changed = await self._scripts.health(
            change, credential.account, credential.fingerprint, detail
        )
        if changed:
            logger.warning("upstream account %s %s", credential.account, what)
            await self.refresh()
        return changed

    def _credential(self, name: str, sealed: str) -> Credential:
        found = self._credentials.get(sealed)
        if found is None or found.account != name:
            key = self._accounts.open_key(name, sealed)
            found = Credential(name, fingerprint(key), f"Key {key}")
            self._credentials[sealed] = found
        return found

    def _unavailable(self, reply: Unavailable) -> FalError:
        seconds = max(1, -(-reply.retry_after_ms // 1000))
        if reply.reason == "full":
            return AccountsFull(
                "Every fal account of the gateway is at its limit of jobs in flight; try again "
                "later",
                headers={"Retry-After": str(seconds)},
            )
        if reply.retry_after_ms:  # every usable account is resting after fal's 429
            return RateLimited(
                "fal is rate-limiting every account of the gateway; try again later",
                headers={"Retry-After": str(seconds)},
            )
        retry = round(self._settings.upstream_probe_interval)
        return NoUsableAccount(
            "No fal account of the gateway can take jobs now", headers={"Retry-After": str(retry)}
        )


def account_pool(
    settings: Settings, store: Store, scripts: Scripts, metrics: Metrics
) -> AccountPool:
    """The pool as a gateway process uses it, on the hot path's connection."""
    account_scripts = AccountScripts(
        scripts,
        settings.lease_ttl,
        settings.upstream_assumed_job_seconds,
        settings.alert_upstream_failures,
        settings.alert_upstream_window,
    )
    sealer = Sealer(settings.account_sealing_key(), KEY_CONTEXT)
    accounts = AccountStore(store, account_scripts, sealer, settings.request_retention)
    return AccountPool(
        accounts, account_scripts, settings, metrics, CallFailures(store, account_scripts)
    )


def _retry_after(headers: Mapping[str, str], default: float) -> float:
    try:
        seconds = float(headers.get("retry-after", ""))
    except ValueError:
        return default
    return seconds if 0 < seconds <= 3600 else default
