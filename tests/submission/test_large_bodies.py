"""Large bodies: every list is bounded, and a body near the size limit is checked off the event
loop, so one caller cannot stall the other requests of the process."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
import pytest

from gateway.catalog import CATALOG
from gateway.catalog.common import MAX_LORAS
from gateway.catalog.flux_general import MAX_CONDITIONS, MAX_LAYER_SCALES
from gateway.jobs.prepare import INLINE_BODY_BYTES, prepare
from gateway.policy.model import EffectivePolicy
from tests.jobs import GENERAL_INPAINTING, INPAINTING, KONTEXT, valid_body
from tests.servers import Emulator, UpstreamLog

_LORA = {"path": "https://x/l.safetensors"}
_CONTROL = {"control_image_url": "https://x/c.png", "control_mode": "canny"}
_ADAPTER = {"path": "p", "image_encoder_path": "e", "image_url": "https://x/a.png", "scale": 1}
_EASY = {
    "control_method_url": "canny",
    "image_url": "https://x/e.png",
    "image_control_type": "spatial",
}


@pytest.mark.parametrize(
    ("endpoint", "field", "items", "loc", "limit"),
    [
        (INPAINTING, "loras", [_LORA] * (MAX_LORAS + 1), ["loras"], MAX_LORAS),
        (GENERAL_INPAINTING, "loras", [_LORA] * (MAX_LORAS + 1), ["loras"], MAX_LORAS),
        (
            GENERAL_INPAINTING,
            "control_loras",
            [{**_LORA, "control_image_url": "https://x/c.png"}] * (MAX_LORAS + 1),
            ["control_loras"],
            MAX_LORAS,
        ),
        (
            GENERAL_INPAINTING,
            "ip_adapters",
            [_ADAPTER] * (MAX_CONDITIONS + 1),
            ["ip_adapters"],
            MAX_CONDITIONS,
        ),
        (
            GENERAL_INPAINTING,
            "easycontrols",
            [_EASY] * (MAX_CONDITIONS + 1),
            ["easycontrols"],
            MAX_CONDITIONS,
        ),
        (
            GENERAL_INPAINTING,
            "controlnet_unions",
            [{"path": "p", "controls": [_CONTROL] * (MAX_CONDITIONS + 1)}],
            ["controlnet_unions", 0, "controls"],
            MAX_CONDITIONS,
        ),
        (
            GENERAL_INPAINTING,
            "loras",
            [{**_LORA, "scale": {f"layer{i}": 1 for i in range(MAX_LAYER_SCALES + 1)}}],
            ["loras", 0, "scale", "dict[str,float]"],
            MAX_LAYER_SCALES,
        ),
    ],
)
def test_over_long_lists_are_422_naming_the_limit(
    caller: httpx.Client,
    emulator: Emulator,
    endpoint: str,
    field: str,
    items: list[Any],
    loc: list[str | int],
    limit: int,
) -> None:
    upstream = UpstreamLog(emulator)
    response = caller.post(f"/{endpoint}", json={**valid_body(endpoint), field: items})
    assert response.status_code == 422, response.text
    assert upstream.submits() == []
    [error] = [e for e in response.json()["detail"] if e["loc"] == ["body", *loc]]
    assert error["type"] == "too_long"
    assert error["ctx"]["max_length"] == limit


def test_lists_at_their_limits_pass(caller: httpx.Client) -> None:
    body = valid_body(
        GENERAL_INPAINTING,
        loras=[_LORA] * MAX_LORAS,
        ip_adapters=[_ADAPTER] * MAX_CONDITIONS,
        easycontrols=[_EASY] * MAX_CONDITIONS,
    )
    assert caller.post(f"/{GENERAL_INPAINTING}", json=body).status_code == 200


def test_a_large_body_is_checked_while_the_event_loop_runs() -> None:
    checking = threading.Event()
    loop_ran = threading.Event()
    seen: list[bool] = []

    def original_url(url: str) -> str:
        # Called while the body is checked. Checked on the event loop, this would hold the loop:
        # nothing would set ``loop_ran``, and the wait would give up (False) after 10 s.
        checking.set()
        seen.append(loop_ran.wait(timeout=10))
        return url

    async def main() -> None:
        body = valid_body(KONTEXT, prompt="x" * INLINE_BODY_BYTES)
        raw = json.dumps(body).encode()
        checked = asyncio.create_task(
            prepare(CATALOG[KONTEXT], raw, EffectivePolicy(), 1 << 20, original_url)
        )
        await asyncio.to_thread(checking.wait, 10)
        loop_ran.set()
        await checked

    asyncio.run(main())
    assert seen == [True]  # one file field (image_url), seen while the loop ran
