"""``/dashboard`` in Debian's chromium (Playwright), against a real server fed through the API.

The page must load with no console error, show events posted through the API within 2 s, show a looked-up
user's recommendations and change them after that user's new events, and show both variants of an
experiment. Screenshots at 1280×800 and 390×844 are written to the test's directory, and to
``$FRESHREC_SCREENSHOTS`` when set (that is how docs/dashboard-*.png are made).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_docs_offline import CHROMIUM_ARGS, chromium_or_skip

from freshrec.demo.scenario import generate_scenario

if TYPE_CHECKING:
    from conftest import Server, StartServer
    from playwright.sync_api import Page

pytestmark = pytest.mark.heavy

EXPERIMENT = {
    "variants": [
        {"name": "control", "weight": 50, "strategy": "personalized"},
        {"name": "fresh", "weight": 50, "strategy": "hybrid"},
    ],
    "metric_window_seconds": 1800,
}


def populate(server: Server) -> tuple[str, list[dict[str, Any]]]:
    """A generated shop's catalog and six hours of clicks, an experiment with traffic; the spotlight user."""
    scenario = generate_scenario(n_users=150, n_items=600, seed=11)
    server.put_items(scenario.items)
    for start in range(0, len(scenario.events), 5000):
        server.send_events(scenario.events[start : start + 5000])
    assert server.client.put("/v1/experiments/home-fresh", json=EXPERIMENT).status_code == 200
    clicks = []
    for n, user in enumerate(sorted({e["user_id"] for e in scenario.events})):
        answer = server.get_json(f"/v1/users/{user}/recommendations", experiment="home-fresh", k=10)
        if n % (2 if answer["variant"] == "fresh" else 5) == 0:
            item = answer["items"][n % 3]["item_id"]
            clicks.append(
                {"user_id": user, "item_id": item, "type": "click", "request_id": answer["request_id"]}
            )
    server.send_events(clicks)
    assert server.client.post("/v1/admin/train").status_code == 200
    return scenario.spotlight_user, scenario.items


def shots(page: Page, name: str, out: Path) -> None:
    for size, (width, height) in {"desktop": (1280, 800), "mobile": (390, 844)}.items():
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(400)
        path = out / f"dashboard-{name}-{size}.png"
        page.screenshot(path=str(path), full_page=True)
        target = os.environ.get("FRESHREC_SCREENSHOTS")
        if target:
            shutil.copy(path, Path(target) / path.name)
    page.set_viewport_size({"width": 1280, "height": 800})


def recs_of(page: Page) -> list[str]:
    items: list[str] = page.eval_on_selector_all(
        "[data-testid=recs] li", "nodes => nodes.map(n => n.dataset.item)"
    )
    return items


def test_the_dashboard_is_live_in_a_real_browser(start_server: StartServer, tmp_path: Path) -> None:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    server = start_server()
    spotlight, items = populate(server)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server.url}/dashboard")
            page.wait_for_selector("#live[data-state=live]", timeout=10_000)
            page.wait_for_selector("[data-experiment=home-fresh] [data-variant=control]", timeout=5_000)
            assert page.locator("[data-experiment=home-fresh] [data-variant=fresh]").count() == 1
            assert page.locator("[data-testid=trending] .cat").count() >= 2

            # events posted through the API are on the page within 2 s
            applied = server.get_json("/health")["applied_events"]
            burst = [
                {"user_id": f"visitor-{i}", "item_id": items[i]["item_id"], "type": "view"} for i in range(25)
            ]
            server.send_events(burst)
            page.wait_for_function(
                f"document.querySelector('[data-testid=applied-events]').dataset.value == '{applied + 25}'",
                timeout=2_000,
            )

            # the user lookup shows recommendations, and they change after the user's new events
            page.fill("#user-id", spotlight)
            page.click("#lookup button")
            page.wait_for_selector("[data-testid=recs][data-strategy=hybrid] li", timeout=5_000)
            page.wait_for_selector("[data-testid=last-events] li", timeout=5_000)
            before = recs_of(page)
            assert before
            shots(page, "overview", tmp_path)
            bought = before[0]
            server.send_events(
                [{"user_id": spotlight, "item_id": bought, "type": "purchase"}]
                + [{"user_id": spotlight, "item_id": i["item_id"], "type": "view"} for i in items[-6:]]
            )
            page.wait_for_function(
                "(before) => { const now = [...document.querySelectorAll('[data-testid=recs] li')]"
                ".map(n => n.dataset.item); return now.length > 0 && now.join() !== before.join(); }",
                arg=before,
                timeout=3_000,
            )
            assert bought not in recs_of(page)  # purchased items are left out
        finally:
            browser.close()
    assert errors == []
