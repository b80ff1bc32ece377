"""HTML forms drawn from the admin API's own pydantic models, and posted forms read back into
them: a field's label, hint, kind and bounds come from its declaration, so the console never
defines a field twice. Money fields (``*_micros``) are entered in currency units."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError

from gateway.policy.limits import PPM

Model = TypeVar("Model", bound=BaseModel)
MONEY = "_micros"


@dataclass(frozen=True)
class FormField:
    """One input of a form."""

    name: str
    label: str
    hint: str
    kind: str
    """``number``, ``text`` or ``select``."""
    value: str
    options: tuple[str, ...] = ()
    required: bool = False


def label(name: str) -> str:
    """A field's label: its name in words; money fields say their unit."""
    words = name.removesuffix(MONEY).replace("_", " ")
    return words[:1].upper() + words[1:] + (" (currency units)" if name.endswith(MONEY) else "")


def _shown(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):  # as posted
        return value
    if name.endswith(MONEY):
        return str(Decimal(int(value)) / PPM)
    return str(value)


def _hint(name: str, description: str) -> str:
    if name.endswith(MONEY):  # entered in currency units here
        return description.replace(", in micro-units", "").replace(" in micro-units", "")
    return description


def _choices(annotation: Any) -> tuple[str, ...]:
    if get_origin(annotation) is Literal:
        return tuple(str(choice) for choice in get_args(annotation))
    return ()


def form_fields(
    model: type[BaseModel], values: Mapping[str, Any], only: Iterable[str] | None = None
) -> list[FormField]:
    """The inputs for ``model``'s fields (``only`` those named, in that order, when given),
    filled with ``values``."""
    names = list(only) if only is not None else list(model.model_fields)
    found = []
    for name in names:
        info = model.model_fields[name]
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        choices = _choices(info.annotation)
        numeric = info.annotation in (int, Decimal) or "int" in str(info.annotation)
        kind = "select" if choices else "number" if numeric or name.endswith(MONEY) else "text"
        found.append(
            FormField(
                name=name,
                label=label(name),
                hint=_hint(name, info.description or ""),
                kind=kind,
                value=_shown(name, values.get(name, default)),
                options=choices,
                required=info.is_required(),
            )
        )
    return found


def _value(name: str, text: str) -> Any:
    if not name.endswith(MONEY):
        return text
    try:
        micros = Decimal(text) * PPM
    except InvalidOperation:
        return text  # the model says what is wrong with it
    return int(micros) if micros == micros.to_integral_value() else text


def read_form(
    model: type[Model], form: Mapping[str, Any], blank_is_none: bool = False
) -> tuple[Model | None, str | None]:
    """``form`` as ``model``, or the reasons it is not one (one line per field).

    A blank field is left out (the model's default), or with ``blank_is_none`` set to None
    where the model allows it: "no limit" in an edit form."""
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        raw = form.get(name)
        text = raw.strip() if isinstance(raw, str) else ""
        if text:
            data[name] = _value(name, text)
        elif blank_is_none and raw is not None and not info.is_required() and info.default is None:
            data[name] = None
    try:
        return model.model_validate(data), None
    except ValidationError as exc:
        return None, "; ".join(_reason(error) for error in exc.errors(include_url=False))


def _reason(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"])
    field = where.split(".", 1)[0]
    text = str(error["msg"])
    if field.endswith(MONEY):
        text = text.replace("a valid integer", "a whole number of micro-units")
    return f"{label(field)}: {text}" if field else text
