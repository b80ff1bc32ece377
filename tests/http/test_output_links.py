"""Only the file fields of fal's output become gateway links; echoed text stays as it was."""

from __future__ import annotations

import httpx

from tests.jobs import KONTEXT, submit, valid_body, wait_status
from tests.servers import Emulator, Gateway


def test_an_echoed_prompt_naming_an_upstream_url_is_returned_as_sent(
    caller: httpx.Client, gateway: Gateway, emulator: Emulator
) -> None:
    prompt = f"like {emulator.url}/files/outputs/x/0.png"
    only_url = f"{emulator.url}/files/outputs/x/0.png"
    for text in (prompt, only_url):
        ran = caller.post(f"/sync/{KONTEXT}", json=valid_body(KONTEXT, prompt=text))
        assert ran.status_code == 200, ran.text
        assert ran.json()["prompt"] == text
        assert ran.json()["images"][0]["url"].startswith(f"{gateway.url}/files/")
    submitted = submit(caller, KONTEXT, valid_body(KONTEXT, prompt=only_url))
    wait_status(caller, submitted["status_url"])
    result = caller.get(submitted["response_url"]).json()
    assert result["prompt"] == only_url
    assert result["images"][0]["url"].startswith(f"{gateway.url}/files/")
