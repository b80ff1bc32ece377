"""The playground's parameters beyond plain fields, in a real browser: LoRAs as rows (one shown,
more added by the page's script, three drawn without it) and ``image_size`` as a preset or a
custom size; what fal receives is read from the emulator's log. A value the endpoint's model
refuses is the form again with fal's errors beside the fields and nothing sent upstream."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.jobs import GENERAL_INPAINTING, IMAGE_TO_IMAGE, KONTEXT
from tests.servers import Emulator, Gateway, UpstreamLog
from tests.web.conftest import WatchedPage
from tests.web.portal import images, shoot, sign_in

PAPER = "https://example.com/weights/paper.safetensors"
INK = "https://example.com/weights/ink.safetensors"


def _open_playground(page: Page, gateway: Gateway, endpoint: str, tmp_path: Path) -> None:
    """A new key signed in, on ``endpoint``'s form, its prompt and images given."""
    token, _ = gateway.new_key()
    sign_in(page, gateway, token)
    page.goto(f"{gateway.url}/portal/playground?endpoint={endpoint}")
    image, mask = images(tmp_path)
    page.get_by_label("Prompt (required)").fill("a paper boat")
    page.get_by_label("Image (required)").set_input_files(image)
    if endpoint.endswith("inpainting"):
        page.get_by_label("Mask (required)").set_input_files(mask)
    page.get_by_text("Parameters").click()


def _summary(page: Page, text: str) -> None:
    page.locator("summary").filter(has_text=re.compile(f"^{text} ")).click()


def _sent(upstream: UpstreamLog) -> dict[str, Any]:
    (submitted,) = upstream.submits()
    body: dict[str, Any] = json.loads(str(submitted["body"]))
    return body


def test_a_job_with_loras_and_a_custom_size_sends_them_to_fal(
    watched: WatchedPage, gateway: Gateway, emulator: Emulator, tmp_path: Path
) -> None:
    page = watched.page
    _open_playground(page, gateway, IMAGE_TO_IMAGE, tmp_path)
    custom = page.get_by_role("group", name="Image Size: custom")
    expect(custom).to_be_hidden()  # until "custom" is chosen
    page.get_by_label("Image Size", exact=True).select_option("custom")
    expect(custom.get_by_label("Width")).to_have_attribute("max", "14142")
    expect(custom.get_by_label("Width")).to_have_value("512")
    custom.get_by_label("Width").fill("320")
    custom.get_by_label("Height").fill("240")

    _summary(page, "Loras")
    first = page.get_by_role("group", name="Loras #1")
    expect(page.get_by_role("group", name="Loras #2")).to_be_hidden()
    first.get_by_label("Path").fill(PAPER)
    expect(first.get_by_label("Scale")).to_have_value("1.0")
    first.get_by_label("Scale").fill("0.6")
    add = page.get_by_role("button", name="Add a row to Loras")
    for _ in range(3):  # rows 2 and 3 are drawn; the fourth is the script's copy
        add.click()
    fourth = page.get_by_role("group", name="Loras #4")
    expect(fourth.get_by_label("Path")).to_be_focused()
    fourth.get_by_label("Path").fill(INK)
    expect(fourth.get_by_label("Scale")).to_have_value("1.0")
    upstream = UpstreamLog(emulator)
    page.get_by_role("button", name="Show the code").click()

    curl = page.get_by_role("region", name="The same call from code").locator("pre").first
    expect(curl).to_contain_text('"image_size": {"width": 320, "height": 240}')
    expect(curl).to_contain_text(
        f'"loras": [{{"path": "{PAPER}", "scale": 0.6}}, {{"path": "{INK}"'
    )
    assert upstream.requests() == []
    # Drawn again, the used rows come first; the unused ones wait behind the button.
    expect(page.get_by_role("group", name="Loras #2").get_by_label("Path")).to_have_value(INK)
    expect(page.get_by_role("group", name="Loras #3")).to_be_hidden()
    page.get_by_label("Image (required)").set_input_files(images(tmp_path)[0])
    shoot(page, "playground-loras")
    page.get_by_role("button", name="Run").click()

    expect(page.get_by_role("status")).to_have_text("COMPLETED", timeout=20_000)
    expect(page.get_by_role("img", name=re.compile("Result image 1, 320\u00d7240"))).to_be_visible()
    sent = _sent(upstream)
    assert sent["image_size"] == {"width": 320, "height": 240}
    assert sent["loras"] == [{"path": PAPER, "scale": 0.6}, {"path": INK, "scale": 1.0}]


def test_values_the_model_refuses_are_shown_beside_the_form_and_nothing_is_sent(
    watched: WatchedPage, gateway: Gateway, emulator: Emulator, tmp_path: Path
) -> None:
    page = watched.page
    _open_playground(page, gateway, GENERAL_INPAINTING, tmp_path)
    page.get_by_label("Image Size", exact=True).select_option("custom")
    width = page.get_by_role("group", name="Image Size: custom").get_by_label("Width")
    # The browser's own range check would stop the form: the server must check it too.
    width.evaluate("input => { input.removeAttribute('max'); input.value = '20000'; }")
    _summary(page, "Loras")
    page.get_by_role("group", name="Loras #1").get_by_label("Scale").fill("0.3")  # no path
    upstream = UpstreamLog(emulator)
    page.get_by_role("button", name="Run").click()

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(
        "Image Size Width: Input should be less than or equal to 14142 body.image_size.custom.width"
    )
    expect(alert).to_contain_text("Loras #1 Path: Field required body.loras.0.path")
    width = page.get_by_role("group", name="Image Size: custom").get_by_label("Width")
    expect(width).to_have_value("20000")
    expect(width).to_have_attribute("aria-invalid", "true")
    expect(width).to_have_accessible_description(re.compile("less than or equal to 14142"))
    lora = page.get_by_role("group", name="Loras #1")
    expect(lora.get_by_label("Scale")).to_have_value("0.3")
    expect(lora.get_by_label("Path")).to_have_accessible_description("required Field required")
    expect(page.get_by_label("Prompt (required)")).to_have_value("a paper boat")
    expect(page.get_by_label("Image Size", exact=True)).to_have_value("custom")
    shoot(page, "playground-params-error")
    assert upstream.requests() == []  # no upload, no job


def test_without_script_three_lora_rows_are_drawn_and_the_form_runs(
    browser: Browser, gateway: Gateway, emulator: Emulator, tmp_path: Path
) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 900})
    watched = WatchedPage(context.new_page())
    page = watched.page
    _open_playground(page, gateway, KONTEXT, tmp_path)
    _summary(page, "Loras")
    for number in (1, 2, 3):
        expect(page.get_by_role("group", name=f"Loras #{number}")).to_be_visible()
    expect(page.get_by_role("group", name="Loras #4")).to_have_count(0)
    expect(page.get_by_role("button", name="Add a row to Loras")).to_be_hidden()
    third = page.get_by_role("group", name="Loras #3")
    third.get_by_label("Path").fill(INK)
    third.get_by_label("Scale").fill("1.5")
    upstream = UpstreamLog(emulator)
    page.get_by_role("button", name="Run").click()

    expect(page.get_by_role("status")).to_have_text("COMPLETED", timeout=20_000)
    assert _sent(upstream)["loras"] == [{"path": INK, "scale": 1.5}]
    context.close()
    assert watched.problems == []


def test_a_posted_form_with_a_scale_that_is_no_finite_number_is_refused(
    gateway: Gateway, emulator: Emulator, tmp_path: Path
) -> None:
    token, _ = gateway.new_key()
    image, _ = images(tmp_path)
    with httpx.Client(base_url=gateway.url) as browser:
        browser.post("/portal/signin", data={"secret": token})
        found = re.search(r'name="csrf" value="([^"]+)"', browser.get("/portal/playground").text)
        assert found is not None
        form = {
            "csrf": found.group(1),
            "endpoint": KONTEXT,
            "prompt": "a paper boat",
            "loras.0.path": PAPER,
            "loras.0.scale": "1e400",
            "loras.7.path": INK,  # rows past the drawn ones are read too
            "loras.7.scale": "many",
        }
        upstream = UpstreamLog(emulator)
        files = {"image_url": ("photo.png", image.read_bytes(), "image/png")}
        answer = browser.post("/portal/playground", data=form, files=files)
    assert answer.status_code == 200
    assert "Loras #1 Scale</a>: Input should be a finite number" in answer.text
    assert "Loras #2 Scale</a>: Input should be a valid number" in answer.text
    assert f'id="f-loras.1.path" name="loras.1.path" value="{INK}"' in answer.text
    assert upstream.requests() == []
