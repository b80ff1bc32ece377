"""What a key (and its team) may ask for: the reseller's plan rules.

A policy is stored on a key and on a team; the one that applies to a request is the stricter of
the two, field by field (``effective``). Violations are refused before anything is sent to fal:
a disallowed endpoint with 403, anything else with fal's 422 naming the field.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.catalog import CATALOG, Endpoint, ImageEditInput
from gateway.catalog.pricing import Estimate
from gateway.errors import ErrorItem, Forbidden, RequestValidationFailed

POLICY_VIOLATION = "policy_violation"


class Policy(BaseModel):
    """One key's or one team's rules; every field unset means no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_endpoints: list[str] | None = None
    """Endpoint ids this key may use; unset: all."""
    max_num_images: Annotated[int, Field(ge=1)] | None = None
    max_loras: Annotated[int, Field(ge=0)] | None = None
    """Most LoRAs per request, ``loras`` and ``control_loras`` together."""
    lora_path_patterns: list[str] | None = None
    """Glob patterns (``fnmatch``) every LoRA path must match; unset: any."""
    max_megapixels: Annotated[float, Field(gt=0)] | None = None
    """Largest output image, in megapixels."""
    force_safety_checker: bool = False
    """Send ``enable_safety_checker: true`` whatever the caller asked."""
    defaults: dict[str, Any] = Field(default_factory=dict)
    """Values for top-level fields the caller leaves out (where the endpoint has the field)."""
    allowed_origins: list[str] | None = None
    """Browser origins (``Origin`` header) this key may be used from; unset: any."""

    @field_validator("allowed_endpoints")
    @classmethod
    def _known_endpoints(cls, value: list[str] | None) -> list[str] | None:
        unknown = sorted(set(value or ()) - set(CATALOG))
        if unknown:
            raise ValueError(f"unknown endpoints: {', '.join(unknown)}")
        return value

    @field_validator("defaults")
    @classmethod
    def _known_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        fields = {name for e in CATALOG.values() for name in e.input_model.model_fields}
        unknown = sorted(set(value) - fields)
        if unknown:
            raise ValueError(f"no endpoint has the fields: {', '.join(unknown)}")
        return value


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


@dataclass(frozen=True)
class EffectivePolicy:
    """The stricter of a team's and a key's policy."""

    allowed_endpoints: frozenset[str] | None = None
    max_num_images: int | None = None
    max_loras: int | None = None
    lora_pattern_sets: tuple[tuple[str, ...], ...] = ()
    """Each set is one policy's patterns; a LoRA path must match one pattern of every set."""
    max_megapixels: float | None = None
    force_safety_checker: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    allowed_origins: frozenset[str] | None = None


def effective(team: Policy, key: Policy) -> EffectivePolicy:
    """Combine a team's and a key's policy; the stricter value wins. The key's defaults win
    over the team's, as the more specific choice of the same reseller."""
    allowed = [set(p.allowed_endpoints) for p in (team, key) if p.allowed_endpoints is not None]
    origins = [set(p.allowed_origins) for p in (team, key) if p.allowed_origins is not None]
    num_images, loras = (
        _min(team.max_num_images, key.max_num_images),
        _min(team.max_loras, key.max_loras),
    )
    return EffectivePolicy(
        allowed_endpoints=frozenset(set.intersection(*allowed)) if allowed else None,
        max_num_images=None if num_images is None else int(num_images),
        max_loras=None if loras is None else int(loras),
        lora_pattern_sets=tuple(
            tuple(p.lora_path_patterns) for p in (team, key) if p.lora_path_patterns is not None
        ),
        max_megapixels=_min(team.max_megapixels, key.max_megapixels),
        force_safety_checker=team.force_safety_checker or key.force_safety_checker,
        defaults={**team.defaults, **key.defaults},
        allowed_origins=frozenset(set.intersection(*origins)) if origins else None,
    )


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


def check_request(policy: EffectivePolicy, request: ImageEditInput, estimate: Estimate) -> None:
    """Refuse what the plan does not allow, naming every offending field at once."""
    errors: list[ErrorItem] = []
    if policy.max_num_images is not None and request.num_images > policy.max_num_images:
        errors.append(
            _violation(["num_images"], f"at most {policy.max_num_images} images per request")
        )
    lora_lists = {"loras": request.loras, "control_loras": getattr(request, "control_loras", [])}
    count = sum(len(items) for items in lora_lists.values())
    if policy.max_loras is not None and count > policy.max_loras:
        errors.append(_violation(["loras"], f"at most {policy.max_loras} LoRAs per request"))
    for name, items in lora_lists.items():
        for index, lora in enumerate(items):
            for patterns in policy.lora_pattern_sets:
                if not any(fnmatch.fnmatchcase(lora.path, p) for p in patterns):
                    errors.append(_violation([name, index, "path"], "LoRA path is not allowed"))
                    break
    if policy.max_megapixels is not None:
        if not estimate.exact:
            errors.append(
                _violation(
                    ["image_url"],
                    "output size limited: state the output size or inline the image as a data URI",
                )
            )
        elif estimate.size.megapixels > policy.max_megapixels:
            errors.append(
                _violation(
                    ["image_size"],
                    f"output images of {estimate.size.megapixels:.2f} MP exceed the "
                    f"{policy.max_megapixels} MP allowed",
                )
            )
    if errors:
        raise RequestValidationFailed(errors)


def enforce(policy: EffectivePolicy, request: ImageEditInput) -> ImageEditInput:
    """The request as forwarded: overrides the policy forces applied."""
    if policy.force_safety_checker and not request.enable_safety_checker:
        return request.model_copy(update={"enable_safety_checker": True})
    return request
