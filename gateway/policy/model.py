"""What a key (and its team) may ask for: the reseller's plan rules, and how a key's and a
team's rules combine.

A policy is stored on a key and on a team; the one that applies to a request is the stricter of
the two, field by field (``effective``). ``checks`` refuses what it does not allow.

Each field's description is also its ``fal-gateway`` flag's help, and its ``Flag`` mark names
that flag: the CLI's policy flags are derived from ``Policy``, nothing else lists them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.catalog import CATALOG


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
        Annotated[int, Field(ge=1)] | None,
        Field(description="Most images per request."),
        Flag("--max-images"),
    ] = None
    max_loras: Annotated[
        Annotated[int, Field(ge=0)] | None,
        Field(description="Most LoRAs per request, loras and control_loras together."),
        Flag("--max-loras"),
    ] = None
    lora_path_patterns: Annotated[
        list[str] | None,
        Field(description="Glob (fnmatch) every LoRA path must match (default: any)."),
        Flag("--lora-pattern"),
    ] = None
    max_megapixels: Annotated[
        Annotated[float, Field(gt=0)] | None,
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


def policy_from(stored: str | None) -> Policy:
    """A policy as kept in a key's or team's Redis record (JSON; absent or empty: no limits)."""
    return Policy.model_validate_json(stored) if stored else Policy()


def policy_field(policy: Policy) -> str:
    """A policy as kept in a Redis record."""
    return policy.model_dump_json(exclude_defaults=True)
