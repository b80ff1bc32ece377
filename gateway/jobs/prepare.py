"""From a caller's raw body to the exact bytes forwarded to fal, and their price.

Order: decode JSON → fill in the policy's defaults → validate against the endpoint's model →
check file fields → price → check the plan's limits → apply the policy's overrides → serialise
every field with its value, defaults included, and nothing the model does not know. The bytes
priced are the bytes sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from gateway.catalog import Endpoint, ImageEditInput, Size
from gateway.catalog.endpoints import decode_body
from gateway.catalog.pricing import Estimate, Price, estimate
from gateway.errors import RequestValidationFailed
from gateway.jobs import input_files as files
from gateway.media.images import MAX_SIDE
from gateway.policy import checks as policy
from gateway.policy.model import EffectivePolicy


@dataclass(frozen=True)
class Submission:
    endpoint: Endpoint
    request: ImageEditInput
    body: bytes
    """Exactly what is forwarded to fal, and what ``estimate`` prices."""
    estimate: Estimate
    ignored_fields: tuple[str, ...]
    """Dotted paths of fields the caller sent that the endpoint does not have (dropped)."""


def unknown_fields(raw: Any, model: BaseModel, prefix: str = "") -> list[str]:
    """Paths in ``raw`` that ``model`` has no field for, nested models and lists included."""
    if not isinstance(raw, dict):
        return []
    found = []
    for name, value in raw.items():
        path = f"{prefix}{name}"
        if name not in type(model).model_fields:
            found.append(path)
            continue
        parsed = getattr(model, name)
        if isinstance(parsed, BaseModel):
            found += unknown_fields(value, parsed, f"{path}.")
        elif isinstance(parsed, list) and isinstance(value, list):
            for index, (item, item_model) in enumerate(zip(value, parsed, strict=False)):
                if isinstance(item_model, BaseModel):
                    found += unknown_fields(item, item_model, f"{path}.{index}.")
    return found


def serialise(request: ImageEditInput) -> bytes:
    """The body fal receives: every known field, explicit defaults, no nulls."""
    return json.dumps(
        request.model_dump(mode="json", exclude_none=True), separators=(",", ":")
    ).encode()


INLINE_BODY_BYTES = 64 * 1024
"""Bodies up to this size are checked on the event loop (a usual body, its images given by URL,
is a few hundred bytes and checks in well under a millisecond); larger ones, inline images
included, in a worker thread, so that a body near the size limit (decoding 48 MB of JSON alone
takes about half a second) never stalls the other requests of the process."""


@dataclass(frozen=True)
class _Checked:
    data: Any
    """The body as decoded, defaults filled in and file links turned back into fal's URLs."""
    request: ImageEditInput
    input_size: Size | None


async def prepare(
    endpoint: Endpoint,
    raw: bytes,
    rules: EffectivePolicy,
    max_data_uri_bytes: int,
    original_url: Callable[[str], str] = str,
    probe: Callable[[str], Awaitable[Size | None]] | None = None,
    price: Price | None = None,
) -> Submission:
    """Check and rewrite a submitted body; raises fal-shaped 403/422 errors. ``original_url``
    turns the gateway's own file links (an upload, an earlier output) back into fal's URLs;
    ``probe`` reads the size of an input image given by URL, when the price depends on it;
    ``price`` is the endpoint's for the caller's team (default: the catalog's)."""
    policy.check_endpoint(rules, endpoint)
    large = len(raw) > INLINE_BODY_BYTES
    args = (endpoint, raw, rules, max_data_uri_bytes, original_url)
    checked = await asyncio.to_thread(_check, *args) if large else _check(*args)
    input_size, request = checked.input_size, checked.request
    if input_size is None and probe is not None and not request.output_size_is_stated():
        input_size = await probe(request.image_url)
        if input_size is not None and max(input_size) > MAX_SIDE:
            raise RequestValidationFailed([files.too_large(("image_url",), input_size)])
    done = (endpoint, rules, checked, input_size, price or endpoint.catalog_price)
    return await asyncio.to_thread(_submission, *done) if large else _submission(*done)


def _check(
    endpoint: Endpoint,
    raw: bytes,
    rules: EffectivePolicy,
    max_data_uri_bytes: int,
    original_url: Callable[[str], str],
) -> _Checked:
    data = policy.apply_defaults(rules, endpoint, decode_body(raw))
    for file_field in endpoint.input_model.FILE_FIELDS:
        data = file_field.map_strings(data, original_url)
    request = endpoint.validate(data)
    report = files.check_files(files.file_values(request), max_data_uri_bytes)
    if report.errors:
        raise RequestValidationFailed(report.errors)
    return _Checked(data, request, report.input_size)


def _submission(
    endpoint: Endpoint,
    rules: EffectivePolicy,
    checked: _Checked,
    input_size: Size | None,
    price: Price,
) -> Submission:
    request = checked.request
    priced = estimate(request, price, input_size)
    policy.check_request(rules, request, priced)
    final = policy.enforce(rules, request)
    return Submission(
        endpoint=endpoint,
        request=final,
        body=serialise(final),
        estimate=priced,
        ignored_fields=tuple(unknown_fields(checked.data, request)),
    )
