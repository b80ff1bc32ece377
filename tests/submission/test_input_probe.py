"""The price of a job whose output size follows its input's, given by URL: the gateway reads the
image's header first, and never charges more than it reserved."""

from __future__ import annotations

import io
import os
import re
import threading
import time

import httpx
from PIL import Image

from tests.images import CRAFTED_HEADERS, png, png_header
from tests.jobs import IMAGE_TO_IMAGE, KONTEXT, valid_body, wait_status
from tests.peer import Peer, SilentServer
from tests.servers import Emulator, Gateway, RedisServer

PRICE_PER_MEGAPIXEL = 35_000  # micro-units, both endpoints used here


def price(width: int, height: int) -> int:
    return -(-width * height * PRICE_PER_MEGAPIXEL // 1_000_000)


def estimated(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return int(response.headers["x-gateway-estimated-cost-micros"])


def team_client(gateway: Gateway, funds: int) -> tuple[str, httpx.Client]:
    team_id = f"t-{os.urandom(5).hex()}"
    gateway.ensure_team(team_id, funds)
    token, _ = gateway.new_key(team_id=team_id)
    return team_id, gateway.client(token)


def balance(gateway: Gateway, team_id: str) -> int:
    with gateway.admin() as admin:
        return int(admin.get(f"/admin/v1/teams/{team_id}").json()["balance_micros"])


def overrun_total(gateway: Gateway) -> float:
    with httpx.Client(base_url=gateway.url) as http:
        text = http.get("/metrics").text
    found = re.search(
        r'^gateway_settlement_overrun_micros_total\{endpoint="fal-ai/flux-kontext-lora"\} (\S+)$',
        text,
        re.MULTILINE,
    )
    return float(found.group(1)) if found else 0.0


def test_fal_hosted_inputs_are_priced_at_their_real_size(
    caller: httpx.Client, emulator: Emulator
) -> None:
    url = f"{emulator.url}/files/demo/photo.png"
    with httpx.Client() as http:
        width, height = Image.open(io.BytesIO(http.get(url).content)).size
    response = caller.post(f"/{IMAGE_TO_IMAGE}", json=valid_body(IMAGE_TO_IMAGE, image_url=url))
    assert estimated(response) == price(width, height)


def test_other_hosts_are_read_for_their_header_only(caller: httpx.Client, peer: Peer) -> None:
    url = peer.serve("probe-640x480.png", png_header(640, 480))
    response = caller.post(f"/{KONTEXT}", json=valid_body(KONTEXT, image_url=url))
    assert estimated(response) == price(640, 480)


def test_an_unreadable_input_is_reserved_at_the_largest_output(
    caller: httpx.Client, peer: Peer
) -> None:
    largest = price(14128, 14128)  # match_input: sides rounded to 16, within 14142
    unreadable = [
        "http://127.0.0.1:9/nothing-listens.png",  # connection refused
        "http://10.255.255.1/private.png",  # not a public address: never connected to
        peer.serve("not-an-image.png", b"plain text, no image header" * 100),
        f"{peer.url}/files/missing.png",  # 404
    ]
    for url in unreadable:
        response = caller.post(f"/{KONTEXT}", json=valid_body(KONTEXT, image_url=url))
        assert estimated(response) == largest, url
        assert response.json()["request_id"]
    auto = valid_body(KONTEXT, image_url=unreadable[0], resolution_mode="auto")
    response = caller.post(f"/{KONTEXT}", json=auto)
    assert estimated(response) == price(1328, 800)  # the largest of Kontext's resolutions


def test_a_large_input_cannot_spend_past_the_credit(gateway: Gateway, peer: Peer) -> None:
    team_id, client = team_client(gateway, funds=100_000)  # 0.1 unit
    url = peer.serve("huge-8000.png", png_header(8000, 8000))
    with client:
        for _ in range(2):
            response = client.post(f"/{KONTEXT}", json=valid_body(KONTEXT, image_url=url))
            assert response.status_code == 402, response.text
            assert response.json()["detail"] == "Not enough credit for this request"
    assert balance(gateway, team_id) == 100_000


def test_an_unreadable_input_past_the_credit_is_refused_saying_why(
    gateway: Gateway, peer: Peer
) -> None:
    team_id, client = team_client(gateway, funds=100_000)
    with client:
        body = valid_body(KONTEXT, image_url="http://127.0.0.1:9/unreadable.png")
        response = client.post(f"/{KONTEXT}", json=body)
    assert response.status_code == 402, response.text
    detail = response.json()["detail"]
    assert detail.startswith("Not enough credit for this request: the size of image_url")
    assert str(price(14128, 14128)) in detail
    assert balance(gateway, team_id) == 100_000


def test_sides_over_fals_limit_are_refused(caller: httpx.Client, peer: Peer) -> None:
    url = peer.serve("too-wide.png", png_header(20_000, 100))
    response = caller.post(f"/{KONTEXT}", json=valid_body(KONTEXT, image_url=url))
    assert response.status_code == 422, response.text
    (item,) = response.json()["detail"]
    assert (item["loc"], item["type"]) == (["body", "image_url"], "image_too_large")


def test_an_input_that_grows_after_it_was_read_is_charged_no_more_than_reserved(
    gateway: Gateway, peer: Peer
) -> None:
    """The header read says 64x48; fal then fetches a 1600x1200 image and bills for it."""
    funds = 10_000_000
    team_id, client = team_client(gateway, funds)
    name = f"grows-{os.urandom(3).hex()}.png"
    url = peer.serve_in_turn(name, png(64, 48), png(1600, 1200))
    before = overrun_total(gateway)
    with client:
        response = client.post(f"/{KONTEXT}", json=valid_body(KONTEXT, image_url=url))
        reserved = estimated(response)
        assert reserved == price(64, 48)
        wait_status(client, response.json()["status_url"])
        result = client.get(response.json()["response_url"]).json()
    assert (result["images"][0]["width"], result["images"][0]["height"]) == (1600, 1200)
    assert peer.gets[name] == 2  # the gateway's header read, then fal's fetch
    assert balance(gateway, team_id) == funds - reserved
    assert overrun_total(gateway) - before == price(1600, 1200) - reserved


def test_a_keys_slow_image_hosts_cannot_hold_every_read(
    redis_server: RedisServer, emulator: Emulator, peer: Peer
) -> None:
    """Reads happen before admission: a key gets two at once here, then 429, and another key's
    read is not kept waiting behind them."""
    settings = {"input_probe_per_key": 2, "input_probe_timeout": 3}
    with SilentServer() as tarpit, Gateway(redis_server.url, emulator.url, settings) as gateway:
        token, _ = gateway.new_key("slow-hosts")
        other, _ = gateway.new_key("other")
        held: list[httpx.Response] = []

        def submit_slow(index: int) -> None:
            body = valid_body(KONTEXT, image_url=f"{tarpit.url}/{index}.png")
            with gateway.client(token) as client:
                held.append(client.post(f"/{KONTEXT}", json=body, timeout=30))

        threads = [threading.Thread(target=submit_slow, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(tarpit._held) < 2:
            assert time.monotonic() < deadline, "the reads did not start"
            time.sleep(0.02)
        with gateway.client(token) as client:
            body = valid_body(KONTEXT, image_url=f"{tarpit.url}/third.png")
            refused = client.post(f"/{KONTEXT}", json=body)
        assert refused.status_code == 429
        assert refused.json()["error_type"] == "too_many_input_reads"
        with gateway.client(other) as client:
            url = peer.serve("other-key.png", png_header(320, 240))
            response = client.post(f"/{KONTEXT}", json=valid_body(KONTEXT, image_url=url))
            assert estimated(response) == price(320, 240)
        for thread in threads:
            thread.join(timeout=30)
    assert [estimated(r) for r in held] == [price(14128, 14128)] * 2  # unread: the upper bound


def test_crafted_headers_at_a_url_are_unreadable_not_a_crash(
    caller: httpx.Client, peer: Peer
) -> None:
    for name, content in CRAFTED_HEADERS.items():
        url = peer.serve(f"crafted-{name}.img", content)
        response = caller.post(f"/{KONTEXT}", json=valid_body(KONTEXT, image_url=url))
        assert estimated(response) == price(14128, 14128), name


def test_an_image_past_pillows_bomb_limit_but_within_fals_is_read(
    caller: httpx.Client, peer: Peer
) -> None:
    url = peer.serve("large.png", png_header(14000, 14000))  # 196 MP; Pillow refuses 179 MP
    response = caller.post(f"/{IMAGE_TO_IMAGE}", json=valid_body(IMAGE_TO_IMAGE, image_url=url))
    assert estimated(response) == price(14000, 14000)


def test_redirects_are_followed_and_bad_urls_are_unreadable(
    caller: httpx.Client, peer: Peer
) -> None:
    target = peer.serve("moved-here.png", png_header(320, 240))
    peer.redirects["moved.png"] = target
    peer.redirects["bad-location.png"] = "http://[::1"
    peer.redirects["bad-port.png"] = "http://127.0.0.1:99999/x.png"
    peer.redirects["loop.png"] = f"{peer.url}/files/loop.png"
    largest = price(14128, 14128)
    for url, expected in [
        (f"{peer.url}/files/moved.png", price(320, 240)),
        (f"{peer.url}/files/bad-location.png", largest),
        (f"{peer.url}/files/bad-port.png", largest),
        (f"{peer.url}/files/loop.png", largest),
    ]:
        body = valid_body(KONTEXT, image_url=url)
        assert estimated(caller.post(f"/{KONTEXT}", json=body)) == expected, url
    for url in ["http://127.0.0.1:99999/x.png", "http://127.0.0.1:port/x.png"]:
        response = caller.post(f"/{KONTEXT}", json=valid_body(KONTEXT, image_url=url))
        assert response.status_code == 422, url
        (item,) = response.json()["detail"]
        assert (item["loc"], item["type"]) == (["body", "image_url"], "url_scheme")
