"""Every Redis key the gateway writes, with its lifetime. Nothing else formats key names.

Keys that one operation touches together share the hash tag ``{<team_id>}``, so the same commands
and scripts run on Redis Cluster. Work shared by every team (the delivery queue, the reconciler's
schedule) is split over ``SHARDS`` shards, each with a hash tag of its own (``{deliveries:<n>}``,
``{reconcile:<n>}``), so that on a cluster it spreads over the nodes; a team's work always goes to
``shard_of(team_id)``. No script touches keys of two hash tags.
"""

from __future__ import annotations

import zlib

PREFIX = "fgw"

SHARDS = 8
"""Shards of the delivery queue and the reconciler's schedule. Never change it on a running
deployment without moving the keys: a team's queued deliveries and schedule entry stay in the
shard its id mapped to when they were written, and a process reading other shards misses them."""


def shard_of(team_id: str) -> int:
    """The shard of ``team_id``'s queued deliveries and schedule entry (stable across processes
    and versions: CRC-32 of the id)."""
    return zlib.crc32(team_id.encode()) % SHARDS


KEY_INDEX = f"{PREFIX}:keys"
"""HASH key_id → team_id: admin lookups only, never the hot path (a token names its team). In
another slot than the records, so it is derived from them (``accounts.indexes``): a superset of
the key records, written before a record; an entry without a record is absent to every reader.
Lives forever."""

KEY_INDEX_PENDING = "{" + KEY_INDEX + "}:pending"
"""ZSET key_id → when its ``KEY_INDEX`` entry was written (s), until its record is: what
tells a creation in progress from one that died. Shares ``KEY_INDEX``'s slot (its hash tag is
that key's whole name). Members leave when their record is written, or are dropped with their
entry by ``accounts.indexes.repair``."""


def key_record(team_id: str, key_id: str) -> str:
    """HASH of one API key (name, team, secret hash, status, times). Lives until deleted."""
    return f"{PREFIX}:{{{team_id}}}:key:{key_id}"


def team_record(team_id: str) -> str:
    """HASH of one team (its ``policy``, as JSON; its price overrides, one field each named by
    ``team_price_field``; its alert thresholds, the flags that keep a crossing from alerting
    twice, ``low_alerted``, ``near_day`` and ``near_month``, and its own alert webhook,
    ``alert_url`` and ``alert_secret``: ``store.alerts``). Lives until deleted."""
    return f"{PREFIX}:{{{team_id}}}:team"


def team_price_field(endpoint_id: str) -> str:
    """The field of ``team_record`` holding the team's own price of an endpoint
    (``Price.encode``); changed together with the record's ``policy_version``."""
    return f"price:{endpoint_id}"


PRICE_TABLE = f"{PREFIX}:{{prices}}:table"
"""HASH version → a price set at run time, JSON: endpoint, terms in micro-units, when it takes
(or took) effect and when it was set (``prices.book``). Every price is kept, superseded ones too,
so the version a usage record names can always be looked up: a few entries per price change.
Lives forever; a scheduled price can be cancelled (removed) before it takes effect."""

PRICE_VERSION = f"{PREFIX}:{{prices}}:version"
"""STRING: the version of the price table, incremented by each change of it (a new price's
version is the table's new one) and by each change of a team's price overrides, which it numbers
too. Read by every admission in the same batch (``Scripts.admit``). Lives forever."""


def request_record(team_id: str, request_id: str) -> str:
    """HASH of one forwarded request (owning key, app, endpoint, time, reservation, whether
    the caller asked for a webhook, the price it was admitted at, when it was seen running and
    asked to be cancelled, fal's final status in short form, the ``traceparent`` of its submit
    when traced): every value under Redis' ``hash-max-listpack-value`` (64 bytes) in the usual
    cases, so the hash stays compact (``accounts.requests``). Expires ``request_retention``
    seconds after submit."""
    return f"{PREFIX}:{{{team_id}}}:req:{request_id}"


TEAM_INDEX = f"{PREFIX}:teams"
"""SET of team ids, for admin listings and the reconciler's audit. Derived from the team records
like ``KEY_INDEX``: a superset of them, written before a record; an id without a record is
absent to every reader. Lives forever."""

TEAM_INDEX_PENDING = "{" + TEAM_INDEX + "}:pending"
"""ZSET team id → when its ``TEAM_INDEX`` entry was written (s), until its record is; like
``KEY_INDEX_PENDING``."""


def key_rate(team_id: str, key_id: str) -> str:
    """STRING: the key's GCRA theoretical arrival time (ms). Expires when it is in the past."""
    return f"{PREFIX}:{{{team_id}}}:rate:key:{key_id}"


def team_rate(team_id: str) -> str:
    """STRING: the team's GCRA theoretical arrival time (ms). Expires when it is in the past."""
    return f"{PREFIX}:{{{team_id}}}:rate:team"


def leases(team_id: str, key_id: str) -> str:
    """ZSET reservation id → lease expiry (ms): the key's jobs in flight.
    Expires with its last lease."""
    return f"{PREFIX}:{{{team_id}}}:leases:{key_id}"


def reservation(team_id: str, reservation_id: str) -> str:
    """HASH of one credit reservation (key, endpoint, cost, the price it was admitted at,
    period, state, request id, the caller's webhook URL, when its caller asked to cancel it, the
    ``traceparent`` of its submit when traced). Expires ``request_retention`` seconds after
    admission."""
    return f"{PREFIX}:{{{team_id}}}:resv:{reservation_id}"


def open_reservations(team_id: str) -> str:
    """ZSET reservation id → admission time (s) of reservations not settled yet. Lives forever."""
    return f"{PREFIX}:{{{team_id}}}:open"


def reconcile_due(shard: int) -> str:
    """ZSET team id → a time ``t`` (s): the team may have open reservations or deliveries not
    attempted yet, and the reconciler looks at it once ``t + reconcile_after`` has passed. Every
    admission adds its team to its shard's (``ZADD LT`` with the admission time, so the earliest
    look wins); a pass removes the team when it claims it and puts it back, at its next look,
    while the team still has open reservations or undelivered deliveries. Only teams with open
    work are in it (bounded by the number of teams), so it needs no expiry. Hash tag
    ``{reconcile:<shard>}``."""
    return f"{PREFIX}:{{reconcile:{shard}}}:due"


def reconcile_claimed(shard: int) -> str:
    """ZSET team id → claim expiry (s): teams of the shard a reconciler pass is looking at. Left
    when the pass releases them; a claim that expires (its process died) goes back to the
    shard's ``reconcile_due``. Hash tag ``{reconcile:<shard>}``."""
    return f"{PREFIX}:{{reconcile:{shard}}}:claimed"


RECONCILE_AUDIT = f"{PREFIX}:{{reconcile}}:audit"
"""STRING: taken (``SET NX``) by the process that audits the schedule against every team's open
reservations and undelivered deliveries; expires after ``reconcile_audit_interval``, which is what
spaces the audits. One key for the fleet (hash tag ``{reconcile}``), touched once per pass."""

TEAMS_LOW_BALANCE = f"{PREFIX}:{{reconcile}}:teams-low-balance"
"""STRING: how many teams were below their low-balance threshold at the last audit, written by
the process that audited and read by every process's pass for its gauge (so no replica shows
an old count); expires after three audit intervals."""

LEGACY_RECONCILE_DUE = f"{PREFIX}:{{reconcile}}:due"
LEGACY_RECONCILE_CLAIMED = f"{PREFIX}:{{reconcile}}:claimed"
"""The schedule before it was sharded (one ZSET pair, hash tag ``{reconcile}``): moved to the
shards and deleted by ``store.legacy`` at start and by the delivery worker now and then."""


def spend(team_id: str) -> str:
    """HASH ``d:<YYYY-MM-DD>`` / ``m:<YYYY-MM>`` → micros reserved or spent in that period.
    ``admit.lua`` drops periods older than ``retention.SPEND_DAYS`` once it has more than
    ``retention.SPEND_FIELDS`` fields; expires ``SPEND_DAYS`` after its last write."""
    return f"{PREFIX}:{{{team_id}}}:spend"


def ledger(team_id: str) -> str:
    """STREAM of every change of the team's balance (credits and usage). Entries older than
    ``ledger_retention`` are trimmed (``XADD MINID ~``, a stream node at a time) by each write;
    export them before (``limits.exports``)."""
    return f"{PREFIX}:{{{team_id}}}:ledger"


def usage_log(team_id: str) -> str:
    """STREAM with one usage record per settled request (its list-price cost, charge and fal's
    billable units among them), read by the usage export and the billing reconciliation
    (``limits.exports``, ``limits.reconciliation``). Entries older than ``usage_retention`` are
    trimmed by each write."""
    return f"{PREFIX}:{{{team_id}}}:usage:log"


def usage_day_prefix(team_id: str) -> str:
    """Prefix of ``usage_day``'s keys."""
    return f"{PREFIX}:{{{team_id}}}:usage:day:"


def usage_day(team_id: str, day: str) -> str:
    """HASH ``<key>|<endpoint>|<metric>`` → total, the team's usage on ``day`` (``YYYY-MM-DD``,
    UTC: the day its reservation was admitted). Written by ``finish.lua``. Expires
    ``usage_retention`` after its last write."""
    return usage_day_prefix(team_id) + day


DELIVERY_GROUP = "relay"
"""The consumer group every process reads each shard's ``delivery_stream`` as."""


def delivery_stream(shard: int) -> str:
    """STREAM of the shard's deliveries to make (fields ``team_id``, ``delivery_id``), read by
    the consumer group ``DELIVERY_GROUP``; entries are acknowledged and deleted when finished
    with (delivered, dead-lettered, rescheduled, or a duplicate). Lives forever, holding only
    entries not finished with. Hash tag ``{deliveries:<shard>}``."""
    return f"{PREFIX}:{{deliveries:{shard}}}:queue"


def delivery_retries(shard: int) -> str:
    """ZSET ``<team id> <delivery id>`` → when its next attempt is due (ms): the shard's
    deliveries waiting to be retried, moved back onto ``delivery_stream`` by ``promote.lua`` when
    due (same hash tag ``{deliveries:<shard>}``). Members leave when due."""
    return f"{PREFIX}:{{deliveries:{shard}}}:retries"


LEGACY_DELIVERY_STREAM = f"{PREFIX}:deliveries"
LEGACY_DELIVERY_RETRIES = "{" + LEGACY_DELIVERY_STREAM + "}:retries"
"""The delivery queue before it was sharded (one stream and its retry schedule, one slot): moved
to the shards and deleted by ``store.legacy`` at start and by the delivery worker now and then."""


def undelivered(team_id: str) -> str:
    """ZSET delivery id → the time (s) by which the delivery must have been attempted or
    rescheduled: the team's deliveries not delivered or dead yet. ``finish.lua`` adds a new
    delivery in the script that creates it (the queue's ``XADD`` is a second round trip, in
    another slot); the worker moves the deadline with each retry and removes the delivery once
    delivered or dead; the reconciler queues again one whose deadline passed while still
    pending (a crash lost its queue entry), and removes those that are gone. Expires
    ``Retention.delivery_pending`` after its last addition, like the records it names."""
    return f"{PREFIX}:{{{team_id}}}:undelivered"


def delivery_team(delivery_id: str) -> str:
    """STRING: the team of a delivery, for admin lookups by delivery id, which is all such a
    lookup knows (so outside any team's hash tag: its own slot, by the id). Written by
    ``Scripts.finish`` in the round trip that queues a new delivery, and again when the
    reconciler or a replay queues it; expires with the delivery."""
    return f"{PREFIX}:delivery-team:{delivery_id}"


def delivery(team_id: str, delivery_id: str) -> str:
    """HASH of one webhook delivery to a caller (target, body, status, attempts, last error,
    the ``traceparent`` its attempts are traced under when traced). Its existence also marks
    fal's webhook for that request as received. Expires ``Retention.delivery_pending`` after it
    was created or replayed (its retry schedule plus ``delivery_retention``), and
    ``delivery_retention`` after it was delivered or dead-lettered (set by the delivery
    worker)."""
    return f"{PREFIX}:{{{team_id}}}:delivery:{delivery_id}"


def key_deliveries(team_id: str, key_id: str) -> str:
    """ZSET delivery id → time it was created or last replayed (s), one key's deliveries.
    Entries older than ``Retention.delivery_pending`` (their delivery is gone) are dropped on
    each write, and the set expires that long after its newest entry."""
    return f"{PREFIX}:{{{team_id}}}:deliveries:{key_id}"


def delivery_lock(team_id: str, delivery_id: str) -> str:
    """STRING: held by the process attempting the delivery; expires after the attempt timeout."""
    return f"{PREFIX}:{{{team_id}}}:delivery-lock:{delivery_id}"


UPSTREAM_ACCOUNTS = f"{PREFIX}:{{upstreams}}:accounts"
"""HASH account name → the fal account, JSON: its key sealed (``upstream.accounts``), the key's
fingerprint, weight, limit, switches and times. Every ``{upstreams}`` key shares one slot, so
one script sees the whole pool. Lives until the account is deleted."""

UPSTREAM_HEALTH = f"{PREFIX}:{{upstreams}}:health"
"""HASH account name → what fal's answers said of it, JSON: refused (disabled with fal's
reason) or cooling until a time; no field: healthy. Fields live until cleared."""

UPSTREAM_IN_FLIGHT = f"{PREFIX}:{{upstreams}}:in-flight"
"""HASH account name → jobs holding one of its slots (kept equal to its members in
``UPSTREAM_SLOTS`` by the scripts)."""

UPSTREAM_SLOTS = f"{PREFIX}:{{upstreams}}:slots"
"""ZSET ``<account>|<reservation id>`` → when the slot lapses (ms): released when the job
ends, or dropped by the next choice after ``lease_ttl`` if its end is never seen."""

UPSTREAM_DURATIONS = f"{PREFIX}:{{upstreams}}:durations"
"""HASH account name → mean time its jobs held a slot (ms), for an honest ``Retry-After``."""


def upstream_failures(day: str) -> str:
    """HASH account name → calls to fal that failed on the UTC ``day`` (``YYYY-MM-DD``), summed
    over replicas (``upstream.failures``); expires ``UPSTREAM_FAILURES_KEPT`` after its last
    write."""
    return f"{PREFIX}:{{upstreams}}:failures:{day}"


UPSTREAM_FAILURE_WINDOW = f"{PREFIX}:{{upstreams}}:failure-window"
"""HASH account name → failed calls in the current alert window, and ``<account>|start`` → when
that window began (s): what raises an ``upstream.failing`` alert once per window
(``count_failures.lua``). Expires two windows after its last write."""

UPSTREAM_ALERTS = "upstreams"
"""The owner of the operator's alerts about fal accounts, in place of a team id: their delivery
records (``delivery``) and ``undelivered`` set are in the ``{upstreams}`` slot, written by the
pool's scripts together with the state change they report; the reconciler looks at it as at a
team. (A team with this id would share that set harmlessly: delivery ids never collide.)"""

UPSTREAM_FAILURES_KEPT = 8 * 86400
"""Seconds a day's failed calls are kept: the console shows the last week."""


def upstream_probe_turn(account: str) -> str:
    """STRING held by the process that probes ``account`` for one probe interval (its TTL)."""
    return f"{PREFIX}:{{upstreams}}:probe:{account}"


def signin_failures(role: str, client: str) -> str:
    """STRING: failed sign-ins to the console or portal from one client address in the
    current window; expires with the window (``console.signin``)."""
    return f"{PREFIX}:signin:{role}:{client}"
