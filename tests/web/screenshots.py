"""Screenshots of every console page at desktop and phone width, into ``docs/screenshots``:
``python -m tests.web.screenshots`` (a gateway on a Redis of its own, with a little data)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, sync_playwright

from tests.jobs import INPAINTING, KONTEXT, submit, valid_body, wait_status
from tests.servers import Gateway
from tests.upstream.pool_stack import pool_stack
from tests.web.conftest import ARGS, CHROMIUM
from tests.web.conftest import DOCS_SCREENSHOTS as SCREENSHOTS
from tests.web.console import sign_in

WIDTHS = (1280, 390)


def seed(gateway: Gateway) -> tuple[str, str]:
    """Two teams with credit, keys and a few jobs; the first key's id and one job's path."""
    gateway.ensure_team("acme", name="Acme studio", daily_cap_micros=50_000_000)
    gateway.ensure_team("globex", funds=3_000_000)
    token, key = gateway.new_key("render farm", team_id="acme")
    gateway.new_key("mobile app", team_id="globex")
    with gateway.client(token) as caller:
        for endpoint in (KONTEXT, INPAINTING):
            submitted = submit(caller, endpoint, valid_body(endpoint, width=256, height=192))
            wait_status(caller, submitted["status_url"])
            caller.get(submitted["response_url"]).raise_for_status()
        failing = valid_body(KONTEXT, image_url="http://127.0.0.1:9/gone.png")
        failed = submit(caller, KONTEXT, failing)  # fal cannot fetch its input: a failed job
        wait_status(caller, failed["status_url"])
    with gateway.admin() as admin:  # after the jobs, which are charged at the catalog's prices
        later = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0).isoformat()
        scheduled = {
            "per_megapixel_micros": 40_000,
            "effective_at": later,
            "note": "fal's new price",
        }
        admin.post("/admin/v1/prices", json={"endpoint": INPAINTING, **scheduled})
        admin.post("/admin/v1/prices", json={"endpoint": KONTEXT, "per_megapixel_micros": 30_000})
        own = {"per_megapixel_micros": 25_000, "per_request_micros": 500}
        admin.put(f"/admin/v1/teams/acme/prices/{KONTEXT}", json=own)
    return str(key["id"]), f"acme/{submitted['request_id']}"


def shoot(page: Page, name: str) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SCREENSHOTS / f"console-{name}-{width}.png"), full_page=True)


def main() -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with pool_stack() as (_, (gateway,)), sync_playwright() as playwright:
        key_id, job = seed(gateway)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{gateway.url}/console/signin")
        shoot(page, "signin")
        sign_in(page, gateway)
        pages = {
            "overview": "/console",
            "teams": "/console/teams",
            "team": "/console/teams/acme",
            "prices": "/console/prices",
            "keys": "/console/keys",
            "key": f"/console/keys/{key_id}",
            "usage": "/console/usage",
            "jobs": "/console/jobs",
            "job": f"/console/jobs/{job}",
            "accounts": "/console/accounts",
            "not-found": "/console/keys/no-such-key",
        }
        for name, path in pages.items():
            page.goto(f"{gateway.url}{path}")
            page.wait_for_load_state("networkidle")
            shoot(page, name)
        browser.close()


if __name__ == "__main__":
    main()
