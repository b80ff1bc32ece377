"""Refusing what a policy does not allow, before anything is sent to fal: a disallowed endpoint
or origin with 403, anything else with fal's 422 naming every offending field."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any

from gateway.catalog import Endpoint, ImageEditInput
from gateway.catalog.files import Loc
from gateway.catalog.pricing import Estimate
from gateway.errors import ErrorItem, Forbidden, RequestValidationFailed
from gateway.policy.model import EffectivePolicy

POLICY_VIOLATION = "policy_violation"


def check_origin(policy: EffectivePolicy, origin: str | None) -> None:
    """A browser call from an origin the key is not allowed on is refused."""
    allowed = policy.allowed_origins
    if origin is not None and allowed is not None and origin not in allowed:
        raise Forbidden(f"This key may not be used from {origin}", error_type="origin_not_allowed")


def check_endpoint(policy: EffectivePolicy, endpoint: Endpoint) -> None:
    if policy.allowed_endpoints is not None and endpoint.id not in policy.allowed_endpoints:
        raise Forbidden(f"This key may not use {endpoint.id}", error_type="endpoint_not_allowed")


def apply_defaults(policy: EffectivePolicy, endpoint: Endpoint, body: Any) -> Any:
    """``body`` with the policy's defaults filled in where the caller left a field out."""
    if not isinstance(body, dict) or not policy.defaults:
        return body
    fields = endpoint.input_model.model_fields
    imposed = {k: v for k, v in policy.defaults.items() if k in fields and k not in body}
    return {**body, **imposed}


def _violation(loc: list[str | int], msg: str) -> ErrorItem:
    return {"loc": ["body", *loc], "msg": msg, "type": POLICY_VIOLATION}


def _weights_paths(request: ImageEditInput) -> Iterator[tuple[Loc, str]]:
    """Every path naming weights fal loads: LoRAs, ControlNets, IP-Adapters and the like."""
    data = request.model_dump()
    for file_field in type(request).FILE_FIELDS:
        if file_field.kind.names_weights:
            for loc, value in file_field.values(data):
                if isinstance(value, str):
                    yield loc, value


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def check_request(policy: EffectivePolicy, request: ImageEditInput, estimate: Estimate) -> None:
    """Refuse what the plan does not allow, naming every offending field at once."""
    errors: list[ErrorItem] = []
    if policy.max_num_images is not None and request.num_images > policy.max_num_images:
        errors.append(
            _violation(["num_images"], f"at most {policy.max_num_images} images per request")
        )
    count = len(request.loras) + len(getattr(request, "control_loras", []))
    if policy.max_loras is not None and count > policy.max_loras:
        errors.append(_violation(["loras"], f"at most {policy.max_loras} LoRAs per request"))
    if policy.lora_pattern_sets:
        for loc, path in _weights_paths(request):
            if not all(_matches(path, patterns) for patterns in policy.lora_pattern_sets):
                errors.append(_violation(list(loc), "weights path is not allowed"))
    if policy.max_megapixels is not None and estimate.size.megapixels > policy.max_megapixels:
        if estimate.exact:
            msg = (
                f"output images of {estimate.size.megapixels:.2f} MP exceed the "
                f"{policy.max_megapixels} MP allowed"
            )
            errors.append(_violation(["image_size"], msg))
        else:
            msg = (
                "output size limited: the size of image_url could not be read; state the "
                "output size or inline the image as a data URI"
            )
            errors.append(_violation(["image_url"], msg))
    if errors:
        raise RequestValidationFailed(errors)


def enforce(policy: EffectivePolicy, request: ImageEditInput) -> ImageEditInput:
    """The request as forwarded: overrides the policy forces applied."""
    if policy.force_safety_checker and not request.enable_safety_checker:
        return request.model_copy(update={"enable_safety_checker": True})
    return request
