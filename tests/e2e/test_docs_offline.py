"""``/docs`` and GraphiQL load everything from the server itself: they work with no network.

The pages' asset URLs are checked on every run; a real browser (Debian's chromium, driven by Playwright,
with every request off the server refused) renders them when chromium is installed — ``REQUIRE_CHROMIUM=1``
(set in ``.ci/run``) makes its absence a failure instead of a skip.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import Server

pytestmark = pytest.mark.heavy

PAGES = {"/docs": {}, "/graphql": {"accept": "text/html"}}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# as the machine's own probe starts it: no background connections to the outside
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def asset_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html) + re.findall(
        r"""url:\s*['"]([^'"]+)['"]""", html
    )


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_asset_of_a_docs_page_is_served_by_the_server(server: Server, page: str) -> None:
    response = server.client.get(page, headers=PAGES[page])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    urls = asset_urls(response.text)
    assert len(urls) >= 2, response.text
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url} from elsewhere"
        asset = server.client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url


def chromium_or_skip() -> str:
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    message = f"no chromium at {CHROMIUM} (apt-get install chromium) for the browser check of /docs"
    if os.environ.get("REQUIRE_CHROMIUM", "") not in ("", "0"):
        pytest.fail(message)
    pytest.skip(message)


def test_docs_and_graphiql_render_in_a_browser_with_no_outside_request(server: Server) -> None:
    executable = chromium_or_skip()
    from playwright.sync_api import Route, sync_playwright

    ours = urlsplit(server.url).netloc
    outside: list[str] = []
    errors: list[str] = []

    def only_ours(route: Route) -> None:
        if urlsplit(route.request.url).netloc == ours:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    server.put_items([{"item_id": "a", "title": "A page"}])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", only_ours)
            page.on("pageerror", lambda error: errors.append(str(error)))

            page.goto(f"{server.url}/docs")
            page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
            assert "freshrec" in page.inner_text(".swagger-ui .info .title")
            page.wait_for_selector(
                '[data-path="/v1/events"]', timeout=20_000
            )  # the OpenAPI document was read

            page.goto(f"{server.url}/graphql")
            page.wait_for_selector(".graphiql-container", timeout=20_000)
            page.click(".graphiql-execute-button")  # the default query, answered by this server
            page.wait_for_function(
                "document.querySelector('.result-window')?.innerText.includes('SimilarContent')",
                timeout=20_000,
            )
        finally:
            browser.close()
    assert outside == []
    assert errors == []


def test_the_schema_is_reachable_from_graphiql_without_a_key(server: Server) -> None:
    """GraphiQL needs introspection; the data fields are what the keys guard (tests/unit/test_api_auth.py)."""
    response = httpx.post(f"{server.url}/graphql", json={"query": "{ __schema { queryType { name } } }"})
    assert response.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
