"""The playground's form drawn from each endpoint's input model, and a sent form read back into
the body the model checks (pure functions; the pages are tested in tests/web)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from gateway.catalog import CATALOG, Endpoint
from gateway.console.playground import compacted, example, locate, placed, problems, read
from gateway.console.playground_form import ROWS, FormField, form_of
from gateway.media.images import MAX_SIDE
from tests.jobs import ALL_ENDPOINTS, GENERAL_INPAINTING, IMAGE_TO_IMAGE, KONTEXT

NOT_OFFERED = {"sync_mode", "controlnet_unions"}
"""Fields the form leaves to the API: the queue is the playground's mode; a ControlNet union's
items hold a list of their own."""
FILES = {"image_url": "https://example.com/i.png", "mask_url": "https://example.com/m.png"}


def _sent(fields: Iterable[FormField]) -> dict[str, str]:
    """What a browser sends for ``fields`` as the form draws them (their defaults)."""
    sent = {}
    for field in fields:
        if field.kind == "checkbox":
            if field.default:
                sent[field.name] = "on"
        elif field.kind != "file":
            sent[field.name] = field.shown
            sent |= _sent(field.custom)
    return sent


def _drawn(endpoint: Endpoint) -> dict[str, str]:
    form = form_of(endpoint)
    sent = _sent(form.fields) | {"prompt": "a fox"}
    for group in form.groups:
        for index in group.rows_shown({}):
            sent |= _sent(group.row(index))
    return sent


@pytest.mark.parametrize("endpoint_id", ALL_ENDPOINTS)
def test_every_field_of_the_model_is_on_the_form_or_named_as_left_out(endpoint_id: str) -> None:
    endpoint = CATALOG[endpoint_id]
    form = form_of(endpoint)
    offered = {f.name for f in form.fields} | {g.name for g in form.groups}
    assert offered | NOT_OFFERED >= set(endpoint.input_model.model_fields)
    assert not offered & NOT_OFFERED


@pytest.mark.parametrize("endpoint_id", ALL_ENDPOINTS)
def test_the_form_as_drawn_sends_the_models_defaults(endpoint_id: str) -> None:
    endpoint = CATALOG[endpoint_id]
    form = form_of(endpoint)
    reading = read(form, _drawn(endpoint))
    assert reading.rows == {g.name: [] for g in form.groups}  # no row is used
    assert problems(form, reading, FILES, 1024) == []
    sent = endpoint.validate({**reading.body, **FILES})
    assert sent == endpoint.validate({"prompt": "a fox", **FILES})


@pytest.mark.parametrize("endpoint_id", [IMAGE_TO_IMAGE, GENERAL_INPAINTING])
def test_image_size_is_a_preset_or_a_custom_size_with_the_models_bounds(endpoint_id: str) -> None:
    size = form_of(CATALOG[endpoint_id]).field("image_size")
    assert size is not None
    assert (size.blank, size.options[0], size.options[-1]) == (True, "square_hd", "custom")
    width, height = size.custom
    assert (width.name, width.minimum, width.maximum, width.default) == (
        "image_size.width",
        1,
        MAX_SIDE,
        512,
    )
    assert height.name == "image_size.height"
    assert form_of(CATALOG[KONTEXT]).field("image_size") is None  # Kontext has no such field


def test_loras_are_rows_up_to_the_models_limit() -> None:
    loras = form_of(CATALOG[KONTEXT]).group("loras")
    assert loras is not None
    assert (loras.is_list, loras.max_items) == (True, 16)
    path, scale = loras.row(2)
    assert (path.name, path.needed, path.link) == ("loras.2.path", True, True)
    assert (scale.name, scale.kind, scale.default) == ("loras.2.scale", "number", 1.0)
    assert loras.rows_shown({}) == list(range(ROWS))
    assert loras.rows_shown({"loras.5.path": "https://x/l.safetensors"}) == list(range(7))


def test_flux_generals_lists_of_flat_objects_are_rows_and_fill_image_one() -> None:
    form = form_of(CATALOG[GENERAL_INPAINTING])
    lists = {g.name: g.max_items for g in form.groups if g.is_list}
    assert lists == {
        "loras": 16,
        "control_loras": 16,
        "controlnets": 1,
        "ip_adapters": 8,
        "easycontrols": 8,
    }
    fill = form.group("fill_image")
    assert fill is not None
    assert not fill.is_list
    assert [f.name for f in fill.row(0)] == [
        "fill_image.fill_image_url",
        "fill_image.in_context_fill",
        "fill_image.use_prompt",
    ]
    reference = form.field("reference_image_url")
    assert reference is not None
    assert (reference.kind, reference.required) == ("file", False)


def test_a_sent_form_gives_the_used_rows_and_a_custom_size() -> None:
    form = form_of(CATALOG[IMAGE_TO_IMAGE])
    sent = _drawn(CATALOG[IMAGE_TO_IMAGE]) | {
        "seed": "9007199254740993",  # past a float's precision
        "image_size": "custom",
        "image_size.width": "320",
        "image_size.height": "",
        "loras.1.path": " https://example.com/a.safetensors ",
        "loras.1.scale": "0.6",
        "loras.3.path": "https://example.com/b.safetensors",  # a row the script added
    }
    reading = read(form, sent)
    assert reading.body["seed"] == 9007199254740993
    assert reading.body["image_size"] == {"width": 320}  # the model's default for the rest
    assert reading.body["loras"] == [
        {"path": "https://example.com/a.safetensors", "scale": 0.6},
        {"path": "https://example.com/b.safetensors"},
    ]
    assert reading.rows["loras"] == [1, 3]
    assert read(form, {**sent, "image_size": "square"}).body["image_size"] == "square"
    assert "image_size" not in read(form, {**sent, "image_size": ""}).body


def test_a_sent_forms_used_rows_are_renumbered_in_order() -> None:
    form = form_of(CATALOG[IMAGE_TO_IMAGE])
    sent = {
        "prompt": "a fox",
        "loras.0.path": "",
        "loras.0.scale": "1.0",
        "loras.2.path": "https://example.com/a.safetensors",
        "loras.2.scale": "1.0",
        "loras.5.scale": "0.5",
        "loras.\u00b2.path": "https://example.com/b.safetensors",  # a digit int() cannot read
        "loras.1234.path": "https://example.com/c.safetensors",  # past any list's limit
    }
    assert compacted(form, sent) == {
        "prompt": "a fox",
        "loras.0.path": "https://example.com/a.safetensors",
        "loras.0.scale": "1.0",
        "loras.1.scale": "0.5",
        "loras.\u00b2.path": "https://example.com/b.safetensors",
        "loras.1234.path": "https://example.com/c.safetensors",
    }
    assert read(form, sent).rows == {"loras": [2, 5]}


def test_the_models_errors_are_placed_on_the_rows_they_came_from() -> None:
    form = form_of(CATALOG[GENERAL_INPAINTING])
    sent = _drawn(CATALOG[GENERAL_INPAINTING]) | {
        "image_size": "custom",
        "image_size.width": "20000",
        "loras.2.path": "https://example.com/a.safetensors",
        "loras.2.scale": "1e400",  # not a finite number
        "num_images": "two",
    }
    found = problems(form, read(form, sent), FILES, 1024)
    assert [(p.control, p.label, p.loc) for p in found] == [
        ("num_images", "Num Images", "body.num_images"),
        ("loras.2.scale", "Loras #3 Scale", "body.loras.0.scale.float"),
        ("image_size.width", "Image Size Width", "body.image_size.custom.width"),
    ]
    assert found[0].msg.startswith("Input should be a valid integer")
    assert found[1].msg == "Input should be a finite number"  # not the per-layer map's error too
    assert found[2].msg == f"Input should be less than or equal to {MAX_SIDE}"


def test_a_used_row_missing_a_needed_field_and_a_bad_lora_link_are_refused() -> None:
    form = form_of(CATALOG[GENERAL_INPAINTING])
    sent = _drawn(CATALOG[GENERAL_INPAINTING]) | {
        "loras.0.path": "not a link",
        "ip_adapters.1.path": "h94/IP-Adapter",
        "fill_image.use_prompt": "on",
    }
    found = problems(form, read(form, sent), FILES, 1024)
    assert {p.control: p.msg for p in found} == {
        "ip_adapters.1.image_encoder_path": "Field required",
        "ip_adapters.1.image_url": "Field required",
        "ip_adapters.1.scale": "Field required",
        "fill_image.fill_image_url": "Field required",
    }
    fixed = {
        **sent,
        "ip_adapters.1.image_encoder_path": "openai/clip",
        "ip_adapters.1.image_url": "https://example.com/face.png",
        "ip_adapters.1.scale": "0.7",
        "fill_image.use_prompt": "",
    }
    del fixed["fill_image.use_prompt"]
    found = problems(form, read(form, fixed), FILES, 1024)
    assert [(p.control, p.msg) for p in found] == [
        ("loras.0.path", "must be an http(s) URL or a data URI")
    ]


def test_an_error_outside_the_forms_controls_is_still_named() -> None:
    form = form_of(CATALOG[KONTEXT])
    reading = read(form, {})
    assert locate(form, reading, ["body"]) == (None, "Input")
    assert locate(form, reading, ["body", "loras"]) == (None, "Loras")
    assert locate(form, reading, ["body", "loras", 7, "path"]) == (None, "Loras")
    assert locate(form, reading, ["body", "elsewhere"]) == (None, "elsewhere")
    errors: list[dict[str, Any]] = [{"loc": ["body", "loras"], "msg": "too many", "type": "x"}] * 2
    assert len(placed(form, reading, errors)) == 2  # not one per control: there is none


def test_the_snippets_carry_the_sent_parameters_and_a_placeholder_for_each_file() -> None:
    sent = _drawn(CATALOG[GENERAL_INPAINTING]) | {
        "image_size": "custom",
        "image_size.width": "320",
        "image_size.height": "240",
        "loras.0.path": "https://example.com/a.safetensors",
        "loras.0.scale": "0.6",
    }
    code = example("http://gw", CATALOG[GENERAL_INPAINTING], sent, ["reference_image_url"])
    assert '"image_size": {"width": 320, "height": 240}' in code["curl"]
    assert '"loras": [{"path": "https://example.com/a.safetensors", "scale": 0.6}]' in code["curl"]
    assert '"reference_image_url": "https://example.com/reference_image.png"' in code["curl"]
    assert (
        "'loras': [{'path': 'https://example.com/a.safetensors', 'scale': 0.6}]"
        in (code["Python (fal-client)"])
    )
    assert '"scale": 0.6' in code["JS (@fal-ai/client)"]
    assert "loras" not in example("http://gw", CATALOG[GENERAL_INPAINTING])["curl"]
