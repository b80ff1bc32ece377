"""Storage: upload initiation, the PUT upload, served files usable as job inputs."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from tests.images import mask_left_half, png
from tests.jobs import INPAINTING, run, valid_body
from tests.servers import Emulator


def _upload(client: httpx.Client, content: bytes, name: str, content_type: str) -> str:
    initiated = client.post(
        "/storage/upload/initiate",
        params={"storage_type": "fal-cdn-v3"},
        json={"file_name": name, "content_type": content_type},
    )
    assert initiated.status_code == 200
    urls = initiated.json()
    assert set(urls) == {"upload_url", "file_url"}
    # fal-js PUTs the bytes without credentials.
    put = httpx.put(urls["upload_url"], content=content, headers={"Content-Type": content_type})
    assert put.status_code == 200
    file_url: str = urls["file_url"]
    return file_url


@pytest.mark.parametrize("storage_type", ["fal-cdn-v3", "gcs"])
def test_upload_then_download(client: httpx.Client, emulator: Emulator, storage_type: str) -> None:
    initiated = client.post(
        "/storage/upload/initiate",
        params={"storage_type": storage_type},
        json={"file_name": "notes.txt", "content_type": "text/plain"},
    ).json()
    assert initiated["file_url"].startswith(f"{emulator.url}/files/")
    httpx.put(initiated["upload_url"], content=b"hello", headers={"Content-Type": "text/plain"})

    served = httpx.get(initiated["file_url"])

    assert served.status_code == 200
    assert served.content == b"hello"
    assert served.headers["content-type"].startswith("text/plain")


def test_uploaded_files_work_as_image_and_mask_urls(client: httpx.Client) -> None:
    body = valid_body(INPAINTING)
    body["image_url"] = _upload(client, png(40, 30), "in.png", "image/png")
    body["mask_url"] = _upload(client, mask_left_half(40, 30), "mask.png", "image/png")

    result = run(client, INPAINTING, body)

    assert result.status_code == 200
    assert result.json()["images"][0]["width"] == 40


def test_file_names_cannot_escape_their_folder(client: httpx.Client) -> None:
    url = _upload(client, b"x", "../../outputs/evil.png", "image/png")
    assert url.endswith("/evil.png")
    assert "/outputs/" not in url


def test_unknown_upload_token_and_missing_file_are_404(emulator: Emulator) -> None:
    assert httpx.put(f"{emulator.url}/storage/upload/nope", content=b"x").status_code == 404
    missing = httpx.get(f"{emulator.url}/files/uploads/nope/x.png")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "File not found"


def test_upload_token_is_single_use(client: httpx.Client) -> None:
    initiated = client.post("/storage/upload/initiate", json={"file_name": "a.bin"}).json()
    assert httpx.put(initiated["upload_url"], content=b"1").status_code == 200
    assert httpx.put(initiated["upload_url"], content=b"2").status_code == 404
    assert httpx.get(initiated["file_url"]).content == b"1"


def test_oversize_uploads_are_refused() -> None:
    with Emulator({"max_upload_bytes": 1000}) as small, small.client() as client:
        initiated = client.post("/storage/upload/initiate", json={"file_name": "big.bin"}).json()
        too_big = httpx.put(initiated["upload_url"], content=b"x" * 1001)
        assert too_big.status_code == 413
        assert too_big.json()["error_type"] == "file_too_large"
        assert httpx.get(initiated["file_url"]).status_code == 404


def test_demo_images_are_always_served_and_usable(emulator: Emulator, client: httpx.Client) -> None:
    body = {
        "prompt": "a hot air balloon",
        "image_url": f"{emulator.url}/files/demo/photo.png",
        "mask_url": f"{emulator.url}/files/demo/mask.png",
    }
    result = run(client, INPAINTING, body)
    assert result.status_code == 200
    assert (result.json()["images"][0]["width"], result.json()["images"][0]["height"]) == (512, 384)


def test_a_body_that_is_not_utf8_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/storage/upload/initiate",
        content=b'{"file_name": "\xff\xfe.png"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error_type"] == "bad_request"


def test_an_aborted_upload_is_dropped_quietly(emulator: Emulator, client: httpx.Client) -> None:
    initiated = client.post("/storage/upload/initiate", json={"file_name": "a.bin"}).json()
    path = urlsplit(initiated["upload_url"]).path
    mark = client.get("/_emulator/requests").json()["next"]
    with socket.create_connection(("127.0.0.1", urlsplit(emulator.url).port or 80)) as sock:
        head = f"PUT {path} HTTP/1.1\r\nHost: emulator\r\nContent-Length: 100000\r\n\r\n"
        sock.sendall(head.encode() + b"x" * 1000)  # then hang up, 99,000 bytes short
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logged = client.get("/_emulator/requests", params={"since": mark}).json()["requests"]
        if [entry for entry in logged if entry["path"] == path]:
            break
        time.sleep(0.05)
    [entry] = [entry for entry in logged if entry["path"] == path]
    assert entry["status"] == 499  # the handler saw the hang-up and answered (to nobody)
    # The token was not used up: the upload can be made again.
    assert httpx.put(initiated["upload_url"], content=b"x").status_code == 200
