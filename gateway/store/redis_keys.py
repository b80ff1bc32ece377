"""Every Redis key the gateway writes, with its lifetime. Nothing else formats key names.

Keys that one operation touches together share the hash tag ``{<team_id>}``, so the same commands
and scripts run on Redis Cluster.
"""

from __future__ import annotations

PREFIX = "fgw"

KEY_INDEX = f"{PREFIX}:keys"
"""HASH key_id → team_id of every key ever created; admin lookups only, never the hot path.
Lives forever."""


def key_record(team_id: str, key_id: str) -> str:
    """HASH of one API key (name, team, secret hash, status, times). Lives until deleted."""
    return f"{PREFIX}:{{{team_id}}}:key:{key_id}"


def team_record(team_id: str) -> str:
    """HASH of one team (its ``policy``, as JSON). Lives until deleted."""
    return f"{PREFIX}:{{{team_id}}}:team"


def request_record(team_id: str, request_id: str) -> str:
    """HASH of one forwarded request (owning key, app, endpoint, time, reservation, whether
    the caller asked for a webhook, fal's final status in short form): every value under
    Redis' ``hash-max-listpack-value`` (64 bytes) in the usual cases, so the hash stays compact
    (``accounts.requests``). Expires ``request_retention`` seconds after submit."""
    return f"{PREFIX}:{{{team_id}}}:req:{request_id}"


TEAM_INDEX = f"{PREFIX}:teams"
"""SET of every team id, for admin listings and the reconciler. Lives forever."""


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
    """HASH of one credit reservation (key, endpoint, cost, period, state, request id, the
    caller's webhook URL). Expires ``request_retention`` seconds after admission."""
    return f"{PREFIX}:{{{team_id}}}:resv:{reservation_id}"


def open_reservations(team_id: str) -> str:
    """ZSET reservation id → admission time (s) of reservations not settled yet. Lives forever."""
    return f"{PREFIX}:{{{team_id}}}:open"


RECONCILE_DUE = f"{PREFIX}:{{reconcile}}:due"
"""ZSET team id → a time ``t`` (s): the team may have open reservations, and the reconciler looks
at it once ``t + reconcile_after`` has passed. Every admission adds its team (``ZADD LT`` with
the admission time, so the earliest look wins); a pass removes the team when it claims it and
puts it back, at its next look, while the team still has open reservations. Only teams with open
work are in it (bounded by the number of teams), so it needs no expiry."""

RECONCILE_CLAIMED = f"{PREFIX}:{{reconcile}}:claimed"
"""ZSET team id → claim expiry (s): teams a reconciler pass is looking at. Left when the pass
releases them; a claim that expires (its process died) goes back to ``RECONCILE_DUE``."""

RECONCILE_AUDIT = f"{PREFIX}:{{reconcile}}:audit"
"""STRING: taken (``SET NX``) by the process that audits the due index against every team's open
reservations; expires after ``reconcile_audit_interval``, which is what spaces the audits."""


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
    """STREAM with one usage record per settled request, read by the usage export
    (``limits.exports``). Entries older than ``usage_retention`` are trimmed by each write."""
    return f"{PREFIX}:{{{team_id}}}:usage:log"


def usage_day_prefix(team_id: str) -> str:
    """Prefix of ``<prefix><YYYY-MM-DD>``: HASH ``<key>|<endpoint>|<metric>`` → total, the team's
    usage that day. Written by ``finish.lua`` (same hash tag). Expires ``usage_retention``
    after its last write."""
    return f"{PREFIX}:{{{team_id}}}:usage:day:"


DELIVERY_STREAM = f"{PREFIX}:deliveries"
"""STREAM of deliveries to make (fields ``team_id``, ``delivery_id``), read by the consumer group
``DELIVERY_GROUP``; entries are acknowledged when delivered or dead-lettered. Lives forever
(acknowledged entries are trimmed by the workers)."""

DELIVERY_GROUP = "relay"

DELIVERY_RETRIES = "{" + DELIVERY_STREAM + "}:retries"
"""ZSET ``<team id> <delivery id>`` → when its next attempt is due (ms): deliveries waiting to be
retried, moved back onto ``DELIVERY_STREAM`` by ``promote.lua`` when due. Its hash tag is the
stream's whole name, so on Redis Cluster both live in one slot. Members leave when due."""


def delivery_team(delivery_id: str) -> str:
    """STRING: the team of a delivery, for admin lookups by delivery id (so outside any team's
    hash tag, like ``DELIVERY_STREAM``; issue 15 is where Redis Cluster gets its answer).
    Written and re-armed with its delivery, and expires with it."""
    return f"{PREFIX}:delivery-team:{delivery_id}"


def delivery(team_id: str, delivery_id: str) -> str:
    """HASH of one webhook delivery to a caller (target, body, status, attempts, last error).
    Its existence also marks fal's webhook for that request as received. Expires
    ``Retention.delivery_pending`` after it was created or replayed (its retry schedule plus
    ``delivery_retention``), and ``delivery_retention`` after it was delivered or dead-lettered
    (set by the delivery worker)."""
    return f"{PREFIX}:{{{team_id}}}:delivery:{delivery_id}"


def key_deliveries(team_id: str, key_id: str) -> str:
    """ZSET delivery id → time it was created or last replayed (s), one key's deliveries.
    Entries older than ``Retention.delivery_pending`` (their delivery is gone) are dropped on
    each write, and the set expires that long after its newest entry."""
    return f"{PREFIX}:{{{team_id}}}:deliveries:{key_id}"


def delivery_lock(team_id: str, delivery_id: str) -> str:
    """STRING: held by the process attempting the delivery; expires after the attempt timeout."""
    return f"{PREFIX}:{{{team_id}}}:delivery-lock:{delivery_id}"
