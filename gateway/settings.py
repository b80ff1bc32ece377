"""Typed, frozen settings, built once and passed in (env prefix ``GATEWAY_``, ``.env`` read).

Every field can be set from the environment: ``EmulatorSettings.run_time`` is
``GATEWAY_EMULATOR_RUN_TIME``. Command-line flags override them.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Seconds = Annotated[float, Field(ge=0)]
Rate = Annotated[float, Field(ge=0, le=1)]
KeyFingerprint = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12}$")]
"""``sha256(key).hexdigest()[:12]``: how the emulator names a fal key without showing it."""


class EmulatorKnobs(BaseModel):
    """The emulator's behaviour knobs; also changeable at run time through ``/_emulator/knobs``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue_delay: Seconds = 0.2
    """Least time a job spends IN_QUEUE before a runner may take it."""
    run_time: Seconds = 1.0
    """Time a job spends IN_PROGRESS."""
    log_interval: Seconds = 0.25
    """A log line is emitted this often while a job runs (0: only the first and last)."""
    fail_submit_rate: Rate = 0.0
    """Share of submits (queue and sync) answered with ``fail_submit_status``."""
    fail_submit_status: Annotated[int, Field(ge=500, le=599)] = 503
    fail_job_rate: Rate = 0.0
    """Share of jobs that run and then fail with a 500 ``internal_server_error`` result."""
    failed_run_units: Annotated[float, Field(ge=0, le=10**6)] = 0.0
    """``x-fal-billable-units`` on a job that ran and ended without output (a runner failure,
    a cancel while running); 0: none, as fal bills only outputs of its Model APIs."""
    units_factor: dict[str, Annotated[float, Field(ge=0, le=1000)]] = {}
    """Endpoint id -> factor on the billable units reported for its outputs (1 when absent):
    an endpoint fal bills differently from its published rule, for reconciliation tests."""
    webhook_delay: Seconds = 0.0
    """Wait before the first webhook delivery attempt (a slow webhook)."""
    webhook_drop_attempts: Annotated[int, Field(ge=0)] = 0
    """Delivery attempts per job that fail without reaching the receiver (a failing webhook)."""
    webhook_retry_scale: Annotated[float, Field(gt=0)] = 1.0
    """Multiplier on fal's retry schedule (10 retries over about 2 hours); 0.001 makes it ~7 s."""
    webhook_timeout: Annotated[float, Field(gt=0)] = 15.0
    """How long a receiver may take to answer one delivery."""
    key_concurrency: Annotated[int, Field(ge=0)] = 0
    """Jobs of one key IN_PROGRESS at once (0: no limit); its others wait IN_QUEUE while other
    keys' jobs run, as a fal account's concurrency limit does."""
    locked_keys: Annotated[tuple[KeyFingerprint, ...], NoDecode] = ()
    """Fingerprints of keys whose account is locked (comma-separated in the environment): their
    submits, sync runs and upload initiations answer 403; reads keep working."""

    @field_validator("locked_keys", mode="before")
    @classmethod
    def _split_locked(cls, value: Any) -> Any:
        return _split_commas(value)


class EmulatorSettings(BaseSettings, EmulatorKnobs):
    """Settings of ``fal-gateway emulator``."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_EMULATOR_", env_file=".env", frozen=True, extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = 8765
    keys: Annotated[tuple[str, ...], NoDecode] = ()
    """fal keys accepted (comma-separated in the environment); empty: any non-empty key."""
    public_url: str | None = None
    """Base of every URL the emulator returns; unset: taken from each request's own host."""
    runners: Annotated[int, Field(ge=1)] = 2
    """Jobs run at once; the rest wait IN_QUEUE with a real ``queue_position``."""
    result_retention: Seconds = 3600.0
    """How long results, their files and their status stay available after completion."""
    file_store_bytes: Annotated[int, Field(ge=0)] = 512 * 1024 * 1024
    """Bytes of uploaded and generated files kept in memory; the oldest go first beyond it."""
    max_upload_bytes: Annotated[int, Field(gt=0)] = 100 * 1024 * 1024
    max_input_bytes: Annotated[int, Field(gt=0)] = 50 * 1024 * 1024
    """Largest input image the emulator will download for a job."""
    input_fetch_timeout: Annotated[float, Field(gt=0)] = 20.0
    user_id: str = "emulator-user"
    """Sent as ``X-Fal-Webhook-User-Id`` and signed into every webhook."""
    signing_key_file: Path | None = None
    """PEM file of the Ed25519 webhook key, created if missing; unset: a new key per start."""
    fault_seed: int | None = None
    """Seed for fault injection draws, for reproducible runs."""
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @field_validator("keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        return _split_commas(value)

    def knobs(self) -> EmulatorKnobs:
        """The knob values these settings start with."""
        return EmulatorKnobs.model_validate(
            self.model_dump(include=set(EmulatorKnobs.model_fields))
        )


def _webhook_secret(value: str) -> bool:
    """``value`` is a Standard Webhooks secret: ``whsec_`` and some base64."""
    try:
        return value.startswith("whsec_") and bool(base64.b64decode(value[6:], validate=True))
    except ValueError:
        return False


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    """Settings of the gateway (``fal-gateway serve`` and ``dev``)."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        env_file=".env",
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,  # the input holds secrets (fal keys, the alert secret)
    )

    host: str = "127.0.0.1"
    port: int = 8000
    workers: Annotated[int, Field(ge=1)] = 1
    public_url: str = "http://127.0.0.1:8000"
    """Base of every URL the gateway hands out (``response_url``, image links, ...)."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    """One Redis (``redis://``, ``rediss://``, ``unix://``), or the primary of a Sentinel
    service: ``redis+sentinel://[[user]:password@]host1:26379,host2:26379/<service>[/<db>]``
    (``rediss+sentinel://`` for TLS); see ``gateway/store/address.py``."""
    redis_sentinel_password: SecretStr | None = None
    """Password of the sentinels themselves (the URL's password is the Redis servers')."""
    redis_pool_size: Annotated[int, Field(ge=1)] = 100
    redis_timeout: Annotated[float, Field(gt=0)] = 2.0
    fal_key: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    """fal keys (comma-separated; ``name=key`` names the account, else ``fal-<n>``) that seed
    the pool of fal accounts at start; more are added at run time (``/admin/v1/upstreams``)."""
    account_secret: SecretStr | None = None
    """Seals the fal keys of the account pool in Redis, so a copy of Redis alone does not
    reveal them; the same on every replica. Unset: the link secret (or the admin token)."""
    upstream_cooldown: Annotated[float, Field(gt=0)] = 30.0
    """How long an account takes no new job after fal answered it 429 (fal's ``Retry-After``
    when it gives one)."""
    upstream_probe_interval: Annotated[float, Field(gt=0)] = 60.0
    """How often an account fal refused is tried again (by one process of the fleet), to
    enable it once fal accepts its key (a locked account topped up)."""
    upstream_refresh_interval: Annotated[float, Field(gt=0)] = 1.0
    """How often each process reads the pool's accounts and state (for calls on a job's
    account, ``/readyz`` and the metrics); choosing an account always reads Redis."""
    upstream_assumed_job_seconds: Annotated[float, Field(gt=0)] = 30.0
    """Mean time a job holds its account, until one was measured (``Retry-After`` when every
    account is at a hard limit)."""
    upstream_queue_url: str = "https://queue.fal.run"
    upstream_run_url: str = "https://fal.run"
    upstream_rest_url: str = "https://rest.fal.ai"
    upstream_timeout: Annotated[float, Field(gt=0)] = 60.0
    upstream_connect_timeout: Annotated[float, Field(gt=0)] = 5.0
    upstream_sync_timeout: Annotated[float, Field(gt=0)] = 600.0
    """How long a sync run (``/sync/...``) may wait for fal's answer."""
    upstream_max_connections: Annotated[int, Field(ge=1)] = 256
    """Connections to fal for short calls (submit, status, result, cancel)."""
    upstream_long_connections: Annotated[int, Field(ge=1)] = 256
    """Connections to fal for calls that hold one for long: sync runs, status streams, file
    uploads and downloads (a separate budget, so these cannot starve short calls)."""
    max_streams_per_key: Annotated[int, Field(ge=1)] = 16
    """Status streams one key may hold open in a gateway process (429 beyond); watchers of one
    request share a single stream from fal."""
    media_hosts: Annotated[tuple[str, ...], NoDecode] = ("fal.media", "*.fal.media")
    """Hosts of fal's generated files; their URLs are rewritten to the gateway's ``/files``."""
    admin_token: SecretStr | None = None
    """Bearer token of the admin API; unset: the admin API refuses every call."""
    link_secret: SecretStr | None = None
    """Seals rewritten file links; must be the same on every replica. Unset: the admin token."""
    request_retention: Annotated[float, Field(gt=0)] = 7 * 24 * 3600.0
    """How long the gateway remembers which key owns a request id."""
    delivery_retention: Annotated[float, Field(gt=0)] = 30 * 24 * 3600.0
    """How long a webhook delivery (and its place in its key's list) is kept once it was
    delivered or dead-lettered; a pending one also lives through its whole retry schedule."""
    usage_retention: Annotated[float, Field(gt=0)] = 400 * 24 * 3600.0
    """How long usage is kept: the daily aggregates (``GET /admin/v1/usage``) and the
    per-request usage log (``GET /admin/v1/usage/export``); export it before it goes."""
    ledger_retention: Annotated[float, Field(gt=0)] = 400 * 24 * 3600.0
    """How long a team's ledger entries are kept (``GET /admin/v1/teams/{id}/ledger/export``
    exports them before they go; the balance itself is kept for good)."""
    status_coalesce_interval: Annotated[float, Field(ge=0)] = 0.5
    """Status polls of one request within this many seconds share one call to fal (per process);
    0 shares only calls in flight. Polls of a request known to be finished never reach fal."""
    lease_ttl: Annotated[float, Field(gt=0)] = 3600.0
    """A job's concurrency lease lapses after this long even if its end is never seen."""
    reconcile_interval: Annotated[float, Field(gt=0)] = 30.0
    """How often each process looks for jobs whose end nobody has seen; a job still running is
    asked about at fal about once per interval, by whichever process comes first."""
    reconcile_after: Annotated[float, Field(gt=0)] = 60.0
    """Age after which an unsettled job is checked at fal by the reconciler."""
    reconcile_lease: Annotated[float, Field(gt=0)] = 300.0
    """How long a process may take over the teams it claimed for one reconciler step before
    another process takes them over (as when it died)."""
    reconcile_audit_interval: Annotated[float, Field(gt=0)] = 3600.0
    """How often one process of the fleet checks every team for open reservations missing from
    the reconciler's schedule (left by a process that died mid-admission, or written before the
    schedule existed)."""
    bind_grace: Annotated[float, Field(gt=0)] = 600.0
    """A reservation still without a fal request id after this long is refunded (lost submit)."""
    background_stall_after: Annotated[float, Field(gt=0)] = 300.0
    """A background loop (reconciler, webhook delivery) with no pass finished for this long (or
    three reconcile intervals, if longer) makes ``/readyz`` answer 503."""
    cap_warning_ratio: Annotated[float, Field(gt=0, le=1)] = 0.9
    """Share of a team's daily or monthly cap whose crossing by an admission is counted
    (``gateway_team_cap_warnings_total``) and logged as a warning naming the team."""
    metrics_team_label: bool = False
    """Label ``gateway_team_cap_warnings_total`` with the team id too: a series per team that
    nears a cap, so only where the number of teams is bounded (empty label otherwise)."""
    background_stop_timeout: Annotated[float, Field(gt=0)] = 5.0
    """On shutdown, how long background loops may take to stop before they are abandoned."""
    shutdown_timeout: Annotated[int, Field(ge=1)] = 20
    """On SIGTERM, how long open requests (streams, sync runs) may take to finish before they
    are cut; then background loops stop (``background_stop_timeout``)."""
    fal_jwks_url: str = "https://rest.fal.ai/.well-known/jwks.json"
    """Where fal publishes the keys its webhooks are signed with."""
    webhook_tolerance: Annotated[float, Field(gt=0)] = 300.0
    """fal webhooks whose timestamp is further than this from now are refused (replay guard)."""
    webhook_allow_http: bool = False
    """Accept ``http://`` caller webhook URLs (local development only)."""
    webhook_allowed_networks: Annotated[tuple[str, ...], NoDecode] = ()
    """Addresses or CIDR networks callers' webhooks may target although private or loopback."""
    webhook_retry_schedule: Annotated[tuple[float, ...], NoDecode] = (
        10,
        30,
        60,
        120,
        300,
        600,
        1800,
        3600,
        7200,
        14400,
        28800,
        43200,
    )
    """Seconds before each retry of a failed delivery (±20 % jitter); then dead-lettered.
    The default spans about 29 hours."""
    webhook_timeout: Annotated[float, Field(gt=0)] = 10.0
    """How long a caller's endpoint may take to answer one delivery."""
    webhook_claim_idle: Annotated[float, Field(gt=0)] = 30.0
    """A delivery left unacknowledged this long (its process died) is taken over by another."""
    webhook_concurrency: Annotated[int, Field(ge=1)] = 64
    """Deliveries one process attempts at once, all receivers together."""
    webhook_target_concurrency: Annotated[int, Field(ge=1)] = 8
    """Deliveries one process attempts at once to one receiver (scheme, host and port of the
    URL); the others wait their turn without holding up other receivers' deliveries."""
    webhook_backlog: Annotated[int, Field(ge=0)] = 1000
    """Deliveries one process keeps waiting for a busy receiver; beyond that, a delivery to a
    busy receiver is left queued and taken up again after ``webhook_claim_idle``."""
    webhook_secret_grace: Annotated[float, Field(ge=0)] = 24 * 3600.0
    """After a webhook secret is rotated, the old one keeps signing for this long."""
    alert_webhook_url: str = ""
    """Where the operator's alerts go (``team.low_balance``, ``team.near_cap``,
    ``upstream.disabled``, ``upstream.failing``), signed as callers' webhooks are; empty: none."""
    alert_webhook_secret: SecretStr | None = None
    """Signs the operator's alerts: a Standard Webhooks secret (``whsec_<base64>``)."""
    alert_upstream_failures: Annotated[int, Field(ge=0)] = 0
    """Failed calls to fal on one account within ``alert_upstream_window`` that raise an
    ``upstream.failing`` alert (once per window); 0: none."""
    alert_upstream_window: Annotated[float, Field(ge=1)] = 300.0
    """Seconds of the windows failed calls are counted in for ``alert_upstream_failures``."""
    max_body_bytes: Annotated[int, Field(gt=0)] = 48 * 1024 * 1024
    """Largest request body accepted (413 beyond)."""
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    """Browser origins allowed to call the gateway (``*`` for any); unset: no CORS."""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line, for a log pipeline; ``text``: lines for people."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True
    """One line per request: method, route template, status, duration, request ids, key, team,
    endpoint and fal account (never a path, a query string, a body or a secret)."""
    max_data_uri_bytes: Annotated[int, Field(gt=0)] = 16 * 1024 * 1024
    """Largest file inlined as a data URI, decoded (422 ``file_too_large`` beyond)."""
    input_probe_timeout: Annotated[float, Field(gt=0)] = 5.0
    """How long reading the header of an input image given by URL may take (then the job is
    reserved at the largest size it could produce)."""
    input_probe_max_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024
    """How much of an input image's URL is read to find its header."""
    input_probe_max_connections: Annotated[int, Field(ge=1)] = 64
    """Connections for reading input image headers, apart from fal's and the webhooks'."""
    input_probe_per_key: Annotated[int, Field(ge=1)] = 8
    """Input image headers one key may have being read at once in a process (429 beyond)."""

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator(
        "fal_key",
        "media_hosts",
        "webhook_allowed_networks",
        "webhook_retry_schedule",
        "cors_origins",
        mode="before",
    )
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _split_commas(value)

    @model_validator(mode="after")
    def _alert_secret(self) -> Settings:
        secret = self.alert_webhook_secret
        if self.alert_webhook_url and secret is None:
            raise ValueError("GATEWAY_ALERT_WEBHOOK_URL needs GATEWAY_ALERT_WEBHOOK_SECRET")
        if secret is not None and not _webhook_secret(secret.get_secret_value()):
            raise ValueError("GATEWAY_ALERT_WEBHOOK_SECRET must be whsec_<base64>")
        return self

    def account_sealing_key(self) -> bytes:
        """The secret that seals the pool's fal keys: ``account_secret``, else the link's."""
        if self.account_secret is not None:
            return self.account_secret.get_secret_value().encode()
        return self.link_signing_key()

    def link_signing_key(self) -> bytes:
        """The secret that seals file links: ``link_secret``, else the admin token."""
        secret = self.link_secret or self.admin_token
        if secret is None:
            raise ValueError("set GATEWAY_LINK_SECRET (or GATEWAY_ADMIN_TOKEN) to seal file links")
        return secret.get_secret_value().encode()
