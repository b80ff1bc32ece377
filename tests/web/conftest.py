"""A real headless Chromium (Debian's ``chromium``, which ``make test`` installs) driven by
Playwright from PyPI. Every page a test opens is watched: a console error or an uncaught
exception in the browser fails the test."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SCREENSHOTS = Path(os.environ.get("GATEWAY_TEST_SCREENSHOTS") or tempfile.mkdtemp(prefix="shots-"))
"""Where the portal tests save their screenshots: a temporary folder, unless
``GATEWAY_TEST_SCREENSHOTS=docs/screenshots`` asks for the ones the docs show (so a test run
leaves the repository as it was)."""
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One browser per module: Playwright's sync API keeps an event loop running while it is
    open, and tests after it that start their own (``asyncio.run``) would find it."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield launched
        launched.close()


NOT_FOUND = (
    "console error: Failed to load resource: the server responded with a status of 404 (Not Found)"
)


class WatchedPage:
    """A page and what its browser console reported."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def not_found_pages(self, count: int) -> None:
        """What ``count`` 404 pages leave on the console (a browser reports a page's error
        status there), and nothing else: taken off the problems."""
        assert self.problems == [NOT_FOUND] * count
        self.problems.clear()

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text}")


@pytest.fixture
def watched(browser: Browser) -> Iterator[WatchedPage]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watched = WatchedPage(context.new_page())
    yield watched
    context.close()
    assert watched.problems == []


@pytest.fixture
def browser_pages(browser: Browser) -> Iterator[tuple[WatchedPage, WatchedPage]]:
    """Two separate browsers' worth of pages (own cookies each): the operator's and a
    customer's."""
    contexts = [browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(2)]
    pages = (WatchedPage(contexts[0].new_page()), WatchedPage(contexts[1].new_page()))
    yield pages
    for context in contexts:
        context.close()
    assert pages[0].problems + pages[1].problems == []
