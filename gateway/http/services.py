"""What the gateway's handlers work with, built once per app by its lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from starlette.requests import Request

from gateway.accounts.keys import KeyStore
from gateway.accounts.requests import RequestRegistry
from gateway.accounts.teams import TeamStore
from gateway.jobs.finisher import Finisher
from gateway.jobs.status import JobStatus
from gateway.jobs.streams import StatusStreams
from gateway.jobs.submit import Submitter
from gateway.policy.cache import PolicyCache
from gateway.prices.table import PriceTable
from gateway.relay.fal_signature import FalKeys
from gateway.relay.outbox import Outbox
from gateway.relay.targets import TargetPolicy
from gateway.settings import Settings
from gateway.store.multiplexed import Store
from gateway.store.scripts import Scripts
from gateway.telemetry.loops import Supervisor
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.tracing import OFF, Tracing
from gateway.upstream import FalUpstream
from gateway.upstream.links import Links
from gateway.upstream.pool import AccountPool


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: Redis
    store: Store
    """The hot path's connection (``scripts`` and ``requests`` use it)."""
    keys: KeyStore
    teams: TeamStore
    requests: RequestRegistry
    upstream: FalUpstream
    accounts: AccountPool
    links: Links
    metrics: Metrics
    scripts: Scripts
    submitter: Submitter
    policies: PolicyCache
    prices: PriceTable
    finisher: Finisher
    job_status: JobStatus
    streams: StatusStreams
    outbox: Outbox
    targets: TargetPolicy
    fal_keys: FalKeys
    background: Supervisor
    openapi: dict[str, Any] = field(default_factory=dict)
    """The OpenAPI document, built once."""
    tracing: Tracing = OFF


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
