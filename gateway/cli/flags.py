"""Command-line flags derived from the models that declare what they set.

Key and team limits come from ``KeyLimits`` and ``TeamLimits`` (each field's ``Stored`` mark,
whose ``flag`` defaults to ``--<field name with dashes>``), the policy rules from ``Policy`` (each
field's ``Flag`` mark), a price's terms from ``PriceTerms`` (``--<field name with dashes>``).
A flag's help is its field's description and its type the field's: a list field's flag may be
repeated, a bool's is a switch, a dict's takes ``FIELD=VALUE``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import NoneType, UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import click
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from gateway.policy.limits import KeyLimits, TeamLimits, stored_limits
from gateway.policy.model import Flag, Policy
from gateway.prices.model import PriceTerms

Command = TypeVar("Command", bound=Callable[..., Any])


def given(**flags: Any) -> dict[str, Any]:
    """Flags the user actually gave (not None); they win over settings from the environment."""
    return {name: value for name, value in flags.items() if value is not None}


def _bare(annotation: Any) -> Any:
    """The type under ``Annotated[...]`` and ``| None``: ``int``, ``list[str]``, ..."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is UnionType:
            (annotation,) = (arg for arg in get_args(annotation) if arg is not NoneType)
        else:
            return annotation


@dataclass(frozen=True)
class FieldFlag:
    """One model field as a flag; the command receives it under the field's name."""

    field: str
    flag: str
    info: FieldInfo
    metavar: str | None = None

    @property
    def kind(self) -> type:
        bare = _bare(self.info.annotation)
        return get_origin(bare) or bare  # type: ignore[no-any-return]

    def option(self) -> Callable[[Command], Command]:
        help_text, kind = self.info.description or "", self.kind
        if kind is bool:
            return click.option(self.flag, self.field, is_flag=True, default=None, help=help_text)
        repeated = kind in (list, dict)
        if kind is dict:
            help_text += " VALUE is JSON (else text)."
        if repeated:
            help_text += " Repeat for more."
        scalar = kind if kind in (int, float) else str  # a Decimal is given as text
        return click.option(
            self.flag,
            self.field,
            type=scalar,
            multiple=repeated,
            metavar=self.metavar,
            help=help_text,
        )

    def value(self, raw: Any) -> Any:
        """What the flag sets, or None where it was not given."""
        if self.kind is dict:
            return dict(self._pair(item) for item in raw) or None
        if self.kind is list:
            return list(raw) or None
        return raw

    def _pair(self, item: str) -> tuple[str, Any]:
        name, sep, raw = item.partition("=")
        if not sep:
            raise click.UsageError(f"{self.flag} takes FIELD=VALUE, not {item!r}")
        try:
            return name, json.loads(raw)
        except json.JSONDecodeError:
            return name, raw


@dataclass(frozen=True)
class FlagSet:
    """The flags of one model."""

    flags: tuple[FieldFlag, ...]

    def options(self, command: Command) -> Command:
        """``command`` with these flags, in the model's order in ``--help``."""
        for flag in reversed(self.flags):
            command = flag.option()(command)
        return command

    def pop(self, params: dict[str, Any]) -> dict[str, Any]:
        """Take these flags out of a command's parameters; the fields the user set."""
        return given(**{flag.field: flag.value(params.pop(flag.field)) for flag in self.flags})


def _flag_set(model: type[BaseModel], flags: Iterable[tuple[str, str, str | None]]) -> FlagSet:
    fields = model.model_fields
    return FlagSet(
        tuple(FieldFlag(name, flag, fields[name], metavar) for name, flag, metavar in flags)
    )


def limit_flags(model: type[BaseModel]) -> FlagSet:
    """The flags for the limits of ``model`` (``KeyLimits`` or ``TeamLimits``)."""
    return _flag_set(
        model,
        (
            (name, mark.flag or "--" + name.replace("_", "-"), None)
            for name, mark in stored_limits(model)
        ),
    )


def policy_flags() -> FlagSet:
    """The flags that describe a ``Policy``; unset flags mean no limit."""
    return _flag_set(
        Policy,
        (
            (name, mark.name, mark.metavar)
            for name, info in Policy.model_fields.items()
            for mark in info.metadata
            if isinstance(mark, Flag)
        ),
    )


def price_flags() -> FlagSet:
    """The flags of a price's terms."""
    names = PriceTerms.model_fields
    return _flag_set(PriceTerms, ((n, "--" + n.replace("_", "-"), None) for n in names))


KEY_LIMITS = limit_flags(KeyLimits)
TEAM_LIMITS = limit_flags(TeamLimits)
POLICY = policy_flags()
PRICE_TERMS = price_flags()
