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


def test_rewrite_touches_only_the_upstream_urls_of_output_files() -> None:
    links = _links()
    untouched = [{"url": "https://example.org/a.png"}, {"url": "data:image/png;base64,AAAA"}]
    output = {
        "images": [
            {"url": f"{UPSTREAM}/files/outputs/1/0.png", "width": 3},
            {"url": "https://v3.fal.media/files/a.jpg"},
            *untouched,
        ],
        "cdn": "https://v3.fal.media/files/a.jpg",
        "nested": [[f"{UPSTREAM}/x"]],
        "n": 1,
    }
    rewritten = links.rewrite(output)
    first, cdn, elsewhere, inline = rewritten["images"]
    assert first["url"].startswith("https://api.example.com/files/")
    assert links.original(first["url"]) == f"{UPSTREAM}/files/outputs/1/0.png"
    assert first["width"] == 3
    assert cdn["url"].startswith("https://api.example.com/files/")
    assert [elsewhere, inline] == untouched
    # Fields that are not declared as files are left alone, whatever they hold.
    assert rewritten["cdn"] == output["cdn"]
    assert rewritten["nested"] == output["nested"]


def test_an_echoed_prompt_with_an_upstream_url_stays_text() -> None:
    links = _links()
    prompt = f"make it like {UPSTREAM}/files/secret.png and https://v3.fal.media/files/b.png"
    output = {"images": [{"url": f"{UPSTREAM}/files/0.png"}], "prompt": prompt, "seed": 1}
    assert links.rewrite(output)["prompt"] == prompt
    only_url = f"{UPSTREAM}/files/elsewhere.png"
    assert links.rewrite({"images": [], "prompt": only_url})["prompt"] == only_url
    event = {"request_id": "r1", "status": "OK", "payload": {**output, "prompt": only_url}}
    relayed = links.rewrite(event)
    assert relayed["payload"]["prompt"] == only_url
    assert relayed["payload"]["images"][0]["url"].startswith("https://api.example.com/files/")


def test_error_bodies_are_not_rewritten() -> None:
    error = {"detail": [{"loc": ["body", "image_url"], "input": f"{UPSTREAM}/files/x.png"}]}
    assert _links().rewrite(error) == error


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


def test_queue_bodies_keep_everything_else() -> None:
    log = {"message": f"fetched {UPSTREAM}/files/in.png", "level": "INFO"}
    body = {"request_id": "r1", "status": "IN_PROGRESS", "logs": [log], "hint": UPSTREAM}
    rewritten = _links().rewrite_queue_body(body, "fal-ai/flux-lora")
    assert (rewritten["logs"], rewritten["hint"]) == ([log], UPSTREAM)
