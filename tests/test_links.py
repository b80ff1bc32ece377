"""URL rewriting and sealed file links (pure functions)."""

from __future__ import annotations

from gateway.upstream.links import Links

UPSTREAM = "http://127.0.0.1:8765"


def _links(secret: bytes = b"s3cret") -> Links:
    return Links(
        "https://api.example.com/", [UPSTREAM, f"{UPSTREAM}/sync"], ["*.fal.media"], secret
    )


def test_file_links_round_trip_and_hide_the_original() -> None:
    links = _links()
    original = "https://v3.fal.media/files/tiger/abc.png"
    link = links.file_link(original)
    assert link.startswith("https://api.example.com/files/")
    assert link.endswith("/abc.png")
    assert "fal.media" not in link
    assert links.resolve(link.split("/")[-2]) == original


def test_the_same_file_always_gets_the_same_link() -> None:
    links = _links()
    first = links.file_link("https://v3.fal.media/files/a.png")
    assert links.file_link("https://v3.fal.media/files/a.png") == first
    assert links.file_link("https://v3.fal.media/files/b.png") != first
    assert _links(b"other").file_link("https://v3.fal.media/files/a.png") != first


def test_links_from_another_secret_or_tampered_do_not_resolve() -> None:
    token = _links().file_link(f"{UPSTREAM}/files/x.png").split("/")[-2]
    assert _links(b"other").resolve(token) is None
    assert _links().resolve(token[:-3] + "AAA") is None
    assert _links().resolve("not base64 at all!") is None


def test_rewrite_touches_only_upstream_urls() -> None:
    links = _links()
    body = {
        "images": [{"url": f"{UPSTREAM}/files/outputs/1/0.png", "width": 3}],
        "cdn": "https://v3.fal.media/files/a.jpg",
        "elsewhere": "https://example.org/a.png",
        "inline": "data:image/png;base64,AAAA",
        "nested": [[f"{UPSTREAM}/x"]],
        "n": 1,
    }
    rewritten = links.rewrite(body)
    assert rewritten["images"][0]["url"].startswith("https://api.example.com/files/")
    assert rewritten["images"][0]["width"] == 3
    assert rewritten["cdn"].startswith("https://api.example.com/files/")
    assert rewritten["elsewhere"] == body["elsewhere"]
    assert rewritten["inline"] == body["inline"]
    assert rewritten["nested"][0][0].startswith("https://api.example.com/files/")


def test_queue_bodies_get_gateway_request_urls() -> None:
    body = {
        "request_id": "r1",
        "status": "IN_QUEUE",
        "response_url": f"{UPSTREAM}/fal-ai/flux-lora/requests/r1",
        "status_url": f"{UPSTREAM}/fal-ai/flux-lora/requests/r1/status",
    }
    rewritten = _links().rewrite_queue_body(body, "fal-ai/flux-lora")
    assert rewritten["response_url"] == "https://api.example.com/fal-ai/flux-lora/requests/r1"
    assert rewritten["status_url"] == "https://api.example.com/fal-ai/flux-lora/requests/r1/status"
    # Set even where fal's body lacks it: a request body's queue URLs are the gateway's.
    assert rewritten["cancel_url"] == "https://api.example.com/fal-ai/flux-lora/requests/r1/cancel"
