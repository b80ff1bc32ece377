"""A sent playground form read back: the JSON body its values give (validated by the endpoint's
own input model, as the API validates it), fal's validation errors placed on the form's
controls, and the code that makes the same call with fal's clients. The form itself is drawn
from the model in ``playground_form``."""

from __future__ import annotations

import json
import pprint
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.catalog import Endpoint
from gateway.console.playground_form import CUSTOM, Form, FormField, Group, form_of
from gateway.errors import ErrorItem, RequestValidationFailed
from gateway.jobs.input_files import check_files, file_values

PLACEHOLDER_URL = "https://example.com/{name}.png"


@dataclass(frozen=True)
class Reading:
    """What a sent form asks for."""

    body: dict[str, Any]
    """The JSON body, files left out; a number that does not read as one is left as its text,
    for the model to refuse."""
    rows: dict[str, list[int]]
    """For each group, the form's row behind each item of the body's list."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a sent form: fal's error item, named by the form's label."""

    label: str
    msg: str
    loc: str
    control: str | None
    """The name of the control it is about, when the form has one."""


def read(form: Form, posted: Mapping[str, Any]) -> Reading:
    """The body a sent form gives: its fields, then each group's used rows."""
    body: dict[str, Any] = {}
    for field in form.fields:
        if field.kind != "file" and (value := _value(field, posted)) is not None:
            body[field.name] = value
    rows: dict[str, list[int]] = {}
    for group in form.groups:
        rows[group.name] = [i for i in group.posted_rows(posted) if group.used(i, posted)]
        items = [_item(group.row(i), posted) for i in rows[group.name]]
        if items:
            body[group.name] = items if group.is_list else items[0]
    return Reading(body, rows)


def compacted(form: Form, posted: Mapping[str, Any]) -> dict[str, Any]:
    """A sent form with each list's used rows numbered from 0 and its unused rows left out,
    so that the form drawn again shows them in order."""
    kept = dict(posted.items())
    for group in form.groups:
        if not group.is_list:
            continue
        rows = group.posted_rows(posted)
        for index in rows:
            for field in group.row(index):
                kept.pop(field.name, None)
        used = [i for i in rows if group.used(i, posted)]
        for new, old in enumerate(used):
            for field, moved in zip(group.row(old), group.row(new), strict=True):
                if field.name in posted:
                    kept[moved.name] = posted[field.name]
    return kept


def _item(fields: Sequence[FormField], posted: Mapping[str, Any]) -> dict[str, Any]:
    return {f.key: value for f in fields if (value := _value(f, posted)) is not None}


def _value(field: FormField, posted: Mapping[str, Any]) -> Any:
    raw = posted.get(field.name)
    if field.kind == "checkbox":
        return raw is not None
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        return None
    if field.custom and text == CUSTOM:
        return _item(field.custom, posted)
    if field.kind == "number":
        return _number(text, integer=field.step == "1")
    return text


def _number(text: str, integer: bool) -> int | float | str:
    if integer:
        try:
            return int(text)  # before float(), which would round a large seed
        except ValueError:
            pass
    try:
        number = float(text)
    except ValueError:
        return text
    if integer:
        return int(number) if number.is_integer() else text
    return number


def problems(
    form: Form, reading: Reading, files: Mapping[str, str], max_data_uri_bytes: int
) -> list[Problem]:
    """What the endpoint's model (and the API's file checks) find wrong with the body, given
    the URL each of its files will have; empty when the job can be sent."""
    try:
        request = form.endpoint.validate({**reading.body, **files})
    except RequestValidationFailed as exc:
        errors = exc.errors
    else:
        errors = check_files(file_values(request), max_data_uri_bytes).errors
    return placed(form, reading, errors)


def placed(form: Form, reading: Reading, errors: Sequence[ErrorItem]) -> list[Problem]:
    """fal's error items on the form's controls: one (the first) for each control."""
    found: list[Problem] = []
    seen = set()
    for item in errors:
        loc = list(item.get("loc", []))
        control, label = locate(form, reading, loc)
        if control is None or control not in seen:
            seen.add(control)
            where = ".".join(str(part) for part in loc)
            found.append(Problem(label, str(item.get("msg", "invalid")), where, control))
    return found


def locate(form: Form, reading: Reading, loc: Sequence[Any]) -> tuple[str | None, str]:
    """The control an error's ``loc`` is about (None when the form has none) and its label."""
    parts = list(loc[1:] if loc[:1] == ["body"] else loc)
    if not parts:
        return None, "Input"
    head, rest = str(parts[0]), parts[1:]
    if (field := form.field(head)) is not None:
        for sub in field.custom:
            if rest[-1:] == [sub.key]:  # ``image_size.custom.width``: the union's branch
                return sub.name, f"{field.label} {sub.label}"
        return field.name, field.label
    group = form.group(head)
    if group is None:
        return None, head
    if group.is_list:
        kept = reading.rows.get(head, [])
        if not rest or not isinstance(rest[0], int) or rest[0] >= len(kept):
            return None, group.label
        index, rest = kept[rest[0]], rest[1:]
    else:
        index = 0
    return _in_row(group, index, rest)


def _in_row(group: Group, index: int, rest: Sequence[Any]) -> tuple[str | None, str]:
    for field in group.row(index):
        if rest[:1] == [field.key]:
            return field.name, f"{group.legend(index)} {field.label}"
    return None, group.legend(index)


def opened(form: Form, posted: Mapping[str, Any], found: Sequence[Problem]) -> set[str]:
    """The groups the form shows open: those with a used row or a problem."""
    wrong = {p.control.split(".", 1)[0] for p in found if p.control}
    return {
        g.name
        for g in form.groups
        if g.name in wrong or any(g.used(i, posted) for i in g.posted_rows(posted))
    }


def changed(form: Form, body: Mapping[str, Any], files: Collection[str]) -> dict[str, Any]:
    """The parameters of ``body`` that differ from their defaults, with each file of ``files``
    (and every required one) as a placeholder URL: what a snippet needs to make the same
    call."""
    shown: dict[str, Any] = {}
    for field in form.fields:
        if field.kind == "file":
            if field.required or field.name in files:
                shown[field.name] = PLACEHOLDER_URL.format(name=field.name.removesuffix("_url"))
        elif field.name in body and (field.required or body[field.name] != field.default):
            shown[field.name] = body[field.name]
    shown |= {g.name: body[g.name] for g in form.groups if g.name in body}
    return shown


def snippets(public_url: str, endpoint: Endpoint, body: Mapping[str, Any]) -> dict[str, str]:
    """The same call with curl, Python (fal-client) and JS (@fal-ai/client); the key is a
    placeholder (the portal never holds a key's secret)."""
    host = public_url.split("://", 1)[-1]
    as_json = json.dumps(body, indent=2)
    python_args = pprint.pformat(dict(body), sort_dicts=False)
    return {
        "curl": (
            f"curl -s -X POST {public_url}/{endpoint.id} \\\n"
            '  -H "Authorization: Key $FAL_KEY" -H "Content-Type: application/json" \\\n'
            f"  -d '{json.dumps(body)}'"
        ),
        "Python (fal-client)": (
            "import os\n\n"
            'os.environ |= {"FAL_KEY": "fgw_...",  # your key\n'
            f'               "FAL_QUEUE_RUN_HOST": "{host}", "FAL_RUN_HOST": "{host}/sync"}}\n'
            "import fal_client\n\n"
            f'result = fal_client.subscribe("{endpoint.id}", arguments={python_args})\n'
            'print(result["images"][0]["url"])'
        ),
        "JS (@fal-ai/client)": (
            'import { fal } from "@fal-ai/client";\n\n'
            'fal.config({ credentials: "fgw_...", // your key\n'
            f'  proxyUrl: {{ url: "{public_url}/fal/proxy", when: "always" }} }});\n'
            f'const {{ data }} = await fal.subscribe("{endpoint.id}", {{ input: {as_json} }});\n'
            "console.log(data.images[0].url);"
        ),
    }


def example(
    public_url: str,
    endpoint: Endpoint,
    posted: Mapping[str, Any] | None = None,
    files: Collection[str] = (),
) -> dict[str, str]:
    """The snippets for ``endpoint`` called with a sent form's values and ``files`` (the
    optional files it holds), or with its defaults and an example prompt."""
    form = form_of(endpoint)
    body: dict[str, Any] = {f.name: f.default for f in form.fields if f.default is not None}
    body["prompt"] = "describe the change"
    if posted:
        body |= read(form, posted).body
    return snippets(public_url, endpoint, changed(form, body, files))
