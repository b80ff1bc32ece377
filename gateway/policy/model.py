"""What a key (and its team) may ask for: the reseller's plan rules, and how a key's and a
team's rules combine.

A policy is stored on a key and on a team; the one that applies to a request is the stricter of
the two, field by field (``effective``). ``checks`` refuses what it does not allow.

Each field's description is also its ``fal-gateway`` flag's help, and its ``Flag`` mark names
that flag: the CLI's policy flags are derived from ``Policy``, nothing else lists them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from gateway.catalog import CATALOG
from gateway.web import jsoncodec

MAX_COUNT = 1000
"""Largest ``max_num_images`` and ``max_loras``: far past what any endpoint accepts."""
MAX_DEPTH = 16
"""Deepest nesting of ``defaults``: endpoint inputs nest three levels; a stored policy must stay
well inside the 200 levels pydantic's JSON parser reads back."""
MAX_MEGAPIXELS = 1000.0
"""Largest ``max_megapixels``: past the largest output an endpoint makes (14142 x 14142 px)."""


@dataclass(frozen=True)
class Flag:
    """The command-line flag that sets a policy field (``fal-gateway keys policy`` and the like).

    A list field's flag is repeated, a bool's is a switch, a dict's takes ``FIELD=VALUE``."""

    name: str
    metavar: str | None = None


class Policy(BaseModel):
    """One key's or one team's rules; every field unset means no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_endpoints: Annotated[
        list[str] | None,
        Field(description="An endpoint id the key may use (default: all)."),
        Flag("--allow-endpoint"),
    ] = None
    max_num_images: Annotated[
        Annotated[int, Field(ge=1, le=MAX_COUNT)] | None,
        Field(description="Most images per request."),
        Flag("--max-images"),
    ] = None
    max_loras: Annotated[
        Annotated[int, Field(ge=0, le=MAX_COUNT)] | None,
        Field(description="Most LoRAs per request, loras and control_loras together."),
        Flag("--max-loras"),
    ] = None
    lora_path_patterns: Annotated[
        list[str] | None,
        Field(
            description="Glob (fnmatch) every weights path (LoRAs, ControlNets, IP-Adapters, "
            "EasyControls) must match (default: any)."
        ),
        Flag("--lora-pattern"),
    ] = None
    max_megapixels: Annotated[
        Annotated[float, Field(gt=0, le=MAX_MEGAPIXELS)] | None,
        Field(description="Largest output image, in megapixels."),
        Flag("--max-megapixels"),
    ] = None
    force_safety_checker: Annotated[
        bool,
        Field(description="Always send enable_safety_checker: true, whatever the caller asked."),
        Flag("--force-safety-checker"),
    ] = False
    defaults: Annotated[dict[str, Any], Flag("--default", metavar="FIELD=VALUE")] = Field(
        default_factory=dict,
        description="A value for a top-level field callers leave out (where the endpoint has it).",
    )
    allowed_origins: Annotated[
        list[str] | None,
        Field(description="A browser origin the key may be used from (default: any)."),
        Flag("--allow-origin"),
    ] = None

    @field_validator("allowed_endpoints")
    @classmethod
    def _known_endpoints(cls, value: list[str] | None) -> list[str] | None:
        unknown = sorted(set(value or ()) - set(CATALOG))
        if unknown:
            raise ValueError(f"unknown endpoints: {', '.join(unknown)}")
        return value

    @field_validator("defaults")
    @classmethod
    def _valid_defaults(cls, value: dict[str, Any]) -> dict[str, Any]:
        types = _field_types()
        unknown = sorted(set(value) - set(types))
        if unknown:
            raise ValueError(f"no endpoint has the fields: {', '.join(unknown)}")
        if _deeper_than(value, MAX_DEPTH):
            raise ValueError(f"defaults nest at most {MAX_DEPTH} lists or objects deep")
        invalid = sorted(k for k, v in value.items() if not any(_fits(t, v) for t in types[k]))
        if invalid:
            raise ValueError(f"no endpoint accepts the values of: {', '.join(invalid)}")
        try:
            jsoncodec.dumps(value)
        except TypeError as exc:  # orjson: an integer past 64 bits
            raise ValueError(f"defaults must be plain JSON values: {exc}") from None
        return value


@cache
def _field_types() -> dict[str, list[TypeAdapter[Any]]]:
    """Each endpoint input field's type, once for every endpoint that has the field."""
    found: dict[str, list[TypeAdapter[Any]]] = {}
    for endpoint in CATALOG.values():
        for name, info in endpoint.input_model.model_fields.items():
            kind = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
            found.setdefault(name, []).append(TypeAdapter(kind))
    return found


def _fits(kind: TypeAdapter[Any], value: Any) -> bool:
    try:
        kind.validate_python(value)
    except ValidationError:
        return False
    return True


def _deeper_than(value: Any, levels: int) -> bool:
    """Whether ``value`` nests more than ``levels`` lists or dicts (recursing ``levels`` deep)."""
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list):
        return False
    return levels <= 0 or any(_deeper_than(item, levels - 1) for item in value)


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


@dataclass(frozen=True)
class EffectivePolicy:
    """The stricter of a team's and a key's policy."""

    allowed_endpoints: frozenset[str] | None = None
    max_num_images: int | None = None
    max_loras: int | None = None
    lora_pattern_sets: tuple[tuple[str, ...], ...] = ()
    """Each set is one policy's patterns; a weights path must match one pattern of every set."""
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


READ_AS_UNSET = frozenset({"max_num_images", "max_loras", "max_megapixels", "defaults"})
"""Fields a stored policy may hold out of today's bounds, as the admin API once let them through;
such a field reads as unset: a limit past its maximum is no limit in effect, and defaults that
could not be sent on are none."""


def policy_from(stored: str | None) -> Policy:
    """A policy as kept in a key's or team's Redis record (JSON; absent or empty: no limits)."""
    if not stored:
        return Policy()
    try:
        return Policy.model_validate_json(stored)
    except ValidationError:
        data = json.loads(stored)  # pydantic's JSON parser stops at 200 levels; this one does not
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        invalid = {error["loc"][0] for error in exc.errors() if error["loc"]}
        if not invalid or not invalid <= READ_AS_UNSET:
            raise
    return Policy.model_validate({k: v for k, v in data.items() if k not in invalid})


def policy_field(policy: Policy) -> str:
    """A policy as kept in a Redis record."""
    return policy.model_dump_json(exclude_defaults=True)
