"""The portal's playground form, derived from a catalog endpoint's input model: its JSON schema
gives every field's type, title, default, range and choices, so no field is defined twice.

What the form offers: the prompt and the image files (uploads); every number, choice, switch and
text; a choice that is a preset or an object (``image_size``: a preset, or ``custom`` with the
object's own fields); a list of flat objects (``loras``, ``ip_adapters``...) as repeatable rows;
an optional flat object (``fill_image``) as one row. Left out: ``sync_mode`` (a playground job
runs in the queue) and anything nested deeper than a row's flat fields (``controlnet_unions``,
whose items hold a list of their own). A field that is a number or a per-layer map (a LoRA's
``scale``) is offered as the number."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway.catalog import Endpoint
from gateway.catalog.files import FileKind

LEFT_OUT = frozenset({"sync_mode"})
"""Fields the form does not offer: a playground job always runs in the queue."""
ROWS = 3
"""Rows a list shows without script (the page's script shows one, and adds them up to the
list's limit)."""
CUSTOM = "custom"
"""The choice of a preset-or-object field that means "the object's fields below"."""


@dataclass(frozen=True)
class FormField:
    """One control of the form; ``name`` is the control's name: a body field (``seed``), a
    row's field (``loras.0.scale``) or an object choice's field (``image_size.width``)."""

    name: str
    label: str
    kind: str
    """``text`` (the prompt), ``file``, ``number``, ``select``, ``checkbox`` or ``line``."""
    required: bool = False
    """The form cannot be sent without it (the prompt and the required images)."""
    needed: bool = False
    """A row's field that its item requires (a used row must have it)."""
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    step: str = "any"
    options: tuple[str, ...] = ()
    blank: bool = False
    """A select whose first choice is "not set" (the field is left out of the body)."""
    custom: tuple[FormField, ...] = ()
    """A select's ``custom`` choice: the object's fields."""
    link: bool = False
    """A line that holds a file's URL (or a weights path)."""

    @property
    def key(self) -> str:
        """The field's name in its object (the last part of ``name``)."""
        return self.name.rsplit(".", 1)[-1]

    @property
    def shown(self) -> str:
        """The default as the control shows it."""
        return "" if self.default is None else str(self.default)

    @property
    def hint(self) -> str:
        """The field's range and default, as the form states them."""
        parts = ["required"] if self.needed else []
        if self.minimum is not None and self.maximum is not None:
            parts.append(f"{self.minimum:g} to {self.maximum:g}")
        elif self.maximum is not None:
            parts.append(f"at most {self.maximum:g}")
        if self.kind == "number" and self.default is None and not self.needed:
            parts.append("empty: random" if self.name == "seed" else "optional")
        elif self.default not in (None, "") and self.kind != "checkbox":
            parts.append(f"default {self.default}")
        if self.custom:
            parts.append(f"{CUSTOM}: a width and height of your own")
        elif self.kind == "file" and not self.required:
            parts.append("optional")
        return ", ".join(parts)

    def entered(self, posted: Mapping[str, Any]) -> bool:
        """Whether ``posted`` (a sent form) holds something else than this field's default."""
        raw = posted.get(self.name)
        if self.kind == "checkbox":
            return (raw is not None) != bool(self.default)
        text = raw.strip() if isinstance(raw, str) else ""
        if not text or (self.kind == "select" and self.default is None):
            return False
        if self.kind == "number" and self.default is not None:
            try:
                return float(text) != float(self.default)
            except ValueError:
                return True
        return text != self.shown


@dataclass(frozen=True)
class Group:
    """A list of objects (repeatable rows) or one optional object, with its item's fields."""

    name: str
    label: str
    item: tuple[FormField, ...]
    max_items: int
    is_list: bool

    def row(self, index: int) -> tuple[FormField, ...]:
        """The controls of row ``index`` (named ``loras.0.path``; an object's ``fill_image.x``)."""
        prefix = f"{self.name}.{index}." if self.is_list else f"{self.name}."
        return tuple(replace(f, name=prefix + f.name) for f in self.item)

    def legend(self, index: int) -> str:
        return f"{self.label} #{index + 1}" if self.is_list else self.label

    def posted_rows(self, posted: Mapping[str, Any]) -> list[int]:
        """The row numbers a sent form has controls for, in order."""
        if not self.is_list:
            return [0]
        found = set()
        for name in posted:
            head, _, rest = str(name).partition(".")
            number = rest.partition(".")[0]
            if head == self.name and number.isascii() and number.isdigit() and len(number) < 4:
                found.add(int(number))
        return sorted(found)

    def used(self, index: int, posted: Mapping[str, Any]) -> bool:
        """Whether row ``index`` of a sent form holds anything but its defaults."""
        return any(f.entered(posted) for f in self.row(index))

    def rows_shown(self, posted: Mapping[str, Any]) -> list[int]:
        """The rows the form shows: ``ROWS`` (within the limit), or every used row and one more."""
        if not self.is_list:
            return [0]
        used = [i for i in self.posted_rows(posted) if self.used(i, posted)]
        count = max(min(ROWS, self.max_items), min(self.max_items, used[-1] + 2) if used else 0)
        return list(range(count))


@dataclass(frozen=True)
class Form:
    """An endpoint's form: its fields in the model's order, then its groups."""

    endpoint: Endpoint
    fields: tuple[FormField, ...]
    groups: tuple[Group, ...]

    def field(self, name: str) -> FormField | None:
        return next((f for f in self.fields if f.name == name), None)

    def group(self, name: str) -> Group | None:
        return next((g for g in self.groups if g.name == name), None)

    @property
    def files(self) -> tuple[FormField, ...]:
        return tuple(f for f in self.fields if f.kind == "file")


def form_of(endpoint: Endpoint) -> Form:
    """The endpoint's form, from its input model's JSON schema."""
    model = endpoint.input_model
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    defs = schema.get("$defs", {})
    files = {f.path for f in model.FILE_FIELDS if f.kind is FileKind.IMAGE and len(f.path) == 1}
    links = {tuple(p for p in f.path if p != "*") for f in model.FILE_FIELDS}
    fields: list[FormField] = []
    groups: list[Group] = []
    for name, spec in schema["properties"].items():
        if name in LEFT_OUT:
            continue
        label = _label(spec, name)
        if (name,) in files:
            fields.append(FormField(name, label, "file", required=name in required))
        elif name in required and spec.get("type") == "string":
            fields.append(FormField(name, label, "text", required=True))
        elif (found := _group(name, label, spec, defs, links)) is not None:
            groups.append(found)
        elif (control := _control(name, label, spec, defs)) is not None:
            fields.append(control)
    return Form(endpoint, tuple(fields), tuple(groups))


def _label(spec: Mapping[str, Any], name: str) -> str:
    return str(spec.get("title") or name.replace("_", " ").title()).replace(" Url", "")


def _branches(spec: Mapping[str, Any], defs: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The schemas a value may follow, ``anyOf``/``oneOf`` flattened, refs resolved, nulls out."""
    if "$ref" in spec:
        yield defs[spec["$ref"].rsplit("/", 1)[-1]]
    elif "anyOf" in spec or "oneOf" in spec:
        for branch in spec.get("anyOf", spec.get("oneOf", [])):
            yield from _branches(branch, defs)
    elif spec.get("type") != "null":
        yield spec


def _control(
    name: str, label: str, spec: Mapping[str, Any], defs: Mapping[str, Any]
) -> FormField | None:
    """A plain field's control: a number, a choice (maybe with a custom object), a switch, a
    line of text; None for what a single control cannot hold."""
    branches = list(_branches(spec, defs))
    kinds = {b.get("type") for b in branches}
    default = spec.get("default")
    enums = [b for b in branches if "enum" in b]
    objects = [b for b in branches if b.get("type") == "object" and "properties" in b]
    numbers = [b for b in branches if b.get("type") in ("integer", "number")]
    if len(enums) == 1 and len(branches) == 1:
        options = tuple(str(o) for o in enums[0]["enum"])
        return FormField(
            name, label, "select", default=default, options=options, blank=default is None
        )
    if len(enums) == 1 and len(objects) == 1 and len(branches) == 2:
        custom = _flat(objects[0], defs, (), f"{name}.")
        if custom is None:
            return None
        options = (*(str(o) for o in enums[0]["enum"]), CUSTOM)
        return FormField(
            name, label, "select", default=default, options=options, blank=True, custom=custom
        )
    if numbers:  # a number, or a number or a map (a per-layer scale): the number
        number = numbers[0]
        integer = number["type"] == "integer"
        low, high = number.get("minimum"), number.get("maximum")
        if low is None and (above := number.get("exclusiveMinimum")) is not None:
            low = above + 1 if integer else above
        step = "1" if integer else "any"
        return FormField(
            name, label, "number", default=default, minimum=low, maximum=high, step=step
        )
    if kinds == {"boolean"}:
        return FormField(name, label, "checkbox", default=bool(default))
    if kinds == {"string"}:
        return FormField(name, label, "line", default=default)
    return None


def _flat(
    item: Mapping[str, Any], defs: Mapping[str, Any], links: Collection[str], prefix: str = ""
) -> tuple[FormField, ...] | None:
    """An object's fields as controls, or None when one of them is not a plain field."""
    needed = set(item.get("required", []))
    fields = []
    for key, spec in item.get("properties", {}).items():
        control = _control(prefix + key, _label(spec, key), spec, defs)
        if control is None or control.custom:
            return None
        fields.append(replace(control, needed=key in needed, link=key in links))
    return tuple(fields)


def _group(
    name: str,
    label: str,
    spec: Mapping[str, Any],
    defs: Mapping[str, Any],
    links: set[tuple[str, ...]],
) -> Group | None:
    """A list of flat objects, or one flat object: their rows; None for anything else."""
    branches = list(_branches(spec, defs))
    if len(branches) != 1:
        return None
    (shape,) = branches
    own = {path[1] for path in links if len(path) == 2 and path[0] == name}
    if shape.get("type") == "array":
        items = list(_branches(shape.get("items", {}), defs))
        if len(items) != 1 or items[0].get("type") != "object":
            return None
        item = _flat(items[0], defs, own)
        limit = int(shape.get("maxItems", ROWS))
        return None if item is None else Group(name, label, item, limit, is_list=True)
    if shape.get("type") == "object" and "properties" in shape:
        item = _flat(shape, defs, own)
        return None if item is None else Group(name, label, item, 1, is_list=False)
    return None
