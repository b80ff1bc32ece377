"""The portal's playground form, derived from each catalog endpoint's input model (its JSON
schema gives every field's type, default and range, so no field is defined twice), the values
a posted form gives, and the code that makes the same call with fal's clients."""

from __future__ import annotations

import json
import pprint
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.catalog import Endpoint
from gateway.catalog.files import FileKind

LEFT_OUT = frozenset({"sync_mode"})
"""Fields the form does not offer: a playground job always runs in the queue."""
PLACEHOLDER_URL = "https://example.com/{name}.png"


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    kind: str
    """``text`` (the prompt), ``file``, ``number``, ``select``, ``checkbox`` or ``line``."""
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    step: str = "any"
    options: tuple[str, ...] = ()

    @property
    def hint(self) -> str:
        """The field's range and default, as the form states them."""
        parts = []
        if self.minimum is not None and self.maximum is not None:
            parts.append(f"{self.minimum:g} to {self.maximum:g}")
        if self.kind == "number" and self.default is None and not self.required:
            parts.append("empty: random" if self.name == "seed" else "optional")
        elif self.default not in (None, "") and self.kind != "checkbox":
            parts.append(f"default {self.default}")
        return ", ".join(parts)


def form_fields(endpoint: Endpoint) -> list[FormField]:
    """The endpoint's form: the prompt, its image files, then its plain parameters (numbers,
    choices, switches and text with a default); lists and objects (LoRAs and the like) are
    left to the API."""
    model = endpoint.input_model
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    files = {
        field.path[0]
        for field in model.FILE_FIELDS
        if field.kind is FileKind.IMAGE and len(field.path) == 1
    }
    fields = []
    for name, spec in schema["properties"].items():
        if name in LEFT_OUT:
            continue
        label = str(spec.get("title") or name).replace(" Url", "")
        if name in files and name in required:
            fields.append(FormField(name, label, "file", required=True))
        elif name in required and spec.get("type") == "string":
            fields.append(FormField(name, label, "text", required=True))
        elif (found := _parameter(name, label, spec)) is not None:
            fields.append(found)
    return fields


def _parameter(name: str, label: str, spec: Mapping[str, Any]) -> FormField | None:
    kinds = [spec] if "type" in spec else list(spec.get("anyOf", []))
    types = {kind.get("type") for kind in kinds}
    default = spec.get("default")
    if "enum" in spec:
        return FormField(name, label, "select", default=default, options=tuple(spec["enum"]))
    if (types <= {"integer", "null"} and "integer" in types) or types == {"number"}:
        return FormField(
            name,
            label,
            "number",
            default=default,
            minimum=spec.get("minimum"),
            maximum=spec.get("maximum"),
            step="1" if "integer" in types else "any",
        )
    if types == {"boolean"}:
        return FormField(name, label, "checkbox", default=bool(default))
    if types == {"string"} and "default" in spec:
        return FormField(name, label, "line", default=default)
    return None


def parameters(
    fields: list[FormField], form: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The JSON body a posted form gives (files left out), and what is wrong with it."""
    body: dict[str, Any] = {}
    errors = []
    for field in fields:
        raw = form.get(field.name)
        text = raw.strip() if isinstance(raw, str) else ""
        if field.kind == "checkbox":
            body[field.name] = raw is not None
        elif field.kind == "file":
            continue
        elif not text:
            if field.required:
                errors.append(f"{field.label}: enter a value")
        elif field.kind == "number":
            try:
                body[field.name] = int(text) if field.step == "1" else float(text)
            except ValueError:
                kind = "a whole number" if field.step == "1" else "a number"
                errors.append(f"{field.label}: must be {kind}")
        else:
            body[field.name] = text
    return body, errors


def changed(fields: list[FormField], body: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of ``body`` that differ from their defaults, with every file as a
    placeholder URL: what a snippet needs to make the same call."""
    shown: dict[str, Any] = {}
    for field in fields:
        if field.kind == "file":
            shown[field.name] = PLACEHOLDER_URL.format(name=field.name.removesuffix("_url"))
        elif field.name in body and (field.required or body[field.name] != field.default):
            shown[field.name] = body[field.name]
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
    public_url: str, endpoint: Endpoint, values: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The snippets for ``endpoint`` called with the form's ``values`` (a posted form), or with
    its defaults and an example prompt."""
    fields = form_fields(endpoint)
    body: dict[str, Any] = {f.name: f.default for f in fields if f.default is not None}
    body["prompt"] = "describe the change"
    if values:
        body |= parameters(fields, values)[0]
    return snippets(public_url, endpoint, changed(fields, body))
