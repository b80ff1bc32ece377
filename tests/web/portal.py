"""Helpers of the portal's browser tests: signing in with a key, test images, screenshots."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.images import mask_left_half, png
from tests.servers import Gateway
from tests.web.conftest import SCREENSHOTS

WIDTHS = (1280, 390)


def sign_in(page: Page, gateway: Gateway, token: str) -> None:
    """Sign in to the portal with a key, as its holder would."""
    page.goto(f"{gateway.url}/portal")
    page.get_by_label("API key").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation")).to_be_visible()


def images(tmp_path: Path) -> tuple[Path, Path]:
    """A photo and a mask (its left half) to upload, 64 by 48 pixels."""
    image, mask = tmp_path / "photo.png", tmp_path / "mask.png"
    image.write_bytes(png(64, 48))
    mask.write_bytes(mask_left_half(64, 48))
    return image, mask


def shoot(page: Page, name: str) -> None:
    """Full-page screenshots of ``page`` at desktop and phone width."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=SCREENSHOTS / f"portal-{name}-{width}.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
