"""What the gateway tells fal for its bill, and what fal says it billed.

**Tags** (``X-Fal-Tags``): fal splits its usage reports by the tags set on each request
(``tagged-estimate`` reports). The header packs ``key=value`` pairs separated by commas; fal's
clients (fal-py ``fal_client/_headers.py``, fal-js ``libs/client/src/headers.ts``) trim keys and
values and lowercase keys, and enforce fal's limits: at most 10 pairs, keys ``[a-z0-9._-]``
of 64 characters at most and not starting with ``fal.``, values printable ASCII without commas
of 256 characters at most, and 1024 bytes of keys and values in all; duplicate keys are
last-wins. fal's own gateway "fails open and drops pairs it rejects" (fal-py's comment), so the
gateway keeps the caller's valid pairs, drops the rest, and adds its own (``team``, ``key``:
ids only, never a secret), which win over a caller's pair of the same key and fit first.

**Billable units** (``x-fal-billable-units``): the quantity fal bills a request in its
endpoint's unit (megapixels here), set by the app on its response and returned with the result
fetch, the sync run's answer and error answers alike (fal docs "Publishing to the marketplace";
fal-js PR #223). It may be fractional (``3.008``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

import httpx

TAGS_HEADER = "x-fal-tags"
BILLABLE_UNITS_HEADER = "x-fal-billable-units"
MAX_TAG_PAIRS = 10
MAX_TAG_KEY_LENGTH = 64
MAX_TAG_VALUE_LENGTH = 256
MAX_TAGS_BYTES = 1024
RESERVED_TAG_PREFIX = "fal."
_TAG_KEY = re.compile(r"[a-z0-9._-]+")
_TAG_VALUE = re.compile(r"[\x20-\x2b\x2d-\x7e]*")
MAX_BILLABLE_UNITS = Decimal(10**9)
"""Larger figures are not taken for a request's units (nothing the gateway sells comes near)."""


def _valid_pair(key: str, value: str) -> bool:
    return (
        len(key) <= MAX_TAG_KEY_LENGTH
        and len(value) <= MAX_TAG_VALUE_LENGTH
        and _TAG_KEY.fullmatch(key) is not None
        and _TAG_VALUE.fullmatch(value) is not None
        and not key.startswith(RESERVED_TAG_PREFIX)
    )


def parse_tags(packed: str | None) -> dict[str, str]:
    """The valid ``key=value`` pairs of an ``X-Fal-Tags`` value, normalised as fal stores them
    (invalid ones dropped, a repeated key last-wins), within fal's limits."""
    pairs: dict[str, str] = {}
    for part in (packed or "").split(","):
        raw_key, sep, raw_value = part.partition("=")
        key, value = raw_key.strip().lower(), raw_value.strip()
        if sep and _valid_pair(key, value):
            pairs[key] = value
    return _fitted({}, pairs)


def _fitted(first: Mapping[str, str], then: Mapping[str, str]) -> dict[str, str]:
    """``first``, then each pair of ``then`` whose key is new and that still fits fal's limits."""
    tags = dict(first)
    size = sum(len(key) + len(value) for key, value in tags.items())
    for key, value in then.items():
        grown = size + len(key) + len(value)
        if key in tags or len(tags) == MAX_TAG_PAIRS or grown > MAX_TAGS_BYTES:
            continue
        tags[key] = value
        size = grown
    return tags


def pack_tags(tags: Mapping[str, str]) -> str:
    """The ``X-Fal-Tags`` value of ``tags``."""
    return ",".join(f"{key}={value}" for key, value in tags.items())


def tagged(headers: Mapping[str, str], own: Mapping[str, str]) -> dict[str, str]:
    """``headers`` (the caller's ``x-fal-*`` headers for fal) with ``X-Fal-Tags`` holding the
    gateway's ``own`` tags, then as many of the caller's valid tags as fal's limits leave room
    for."""
    kept = {name: value for name, value in headers.items() if name.lower() != TAGS_HEADER}
    caller = next((v for n, v in headers.items() if n.lower() == TAGS_HEADER), None)
    return {**kept, TAGS_HEADER: pack_tags(_fitted(own, parse_tags(caller)))}


def parse_units(value: str | None) -> str:
    """A billable-units figure as a plain decimal string; ``""`` when there is none or it is
    not a finite, non-negative number of sensible size."""
    try:
        units = Decimal((value or "").strip())
    except InvalidOperation:
        return ""
    if not units.is_finite() or units < 0 or units > MAX_BILLABLE_UNITS:
        return ""
    return units_text(units)


def units_text(units: Decimal | int) -> str:
    """A number of units as plain decimal text: ``2``, ``1.5``, never ``2.0`` or ``2E+1``."""
    text = format(Decimal(units).normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def billable_units(response: httpx.Response) -> str:
    """What fal says it billed for the request ``response`` answers (``""``: not said)."""
    return parse_units(response.headers.get(BILLABLE_UNITS_HEADER))
