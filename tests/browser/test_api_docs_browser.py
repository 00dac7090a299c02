"""The API docs render in a browser that cannot reach the internet: assets come from the API."""

from __future__ import annotations

import pytest

from tests.utils.browser import needs_chromium, screenshot

pytestmark = [pytest.mark.parametrize("backend", ["postgres"], indirect=True), needs_chromium]


def _offline(page, live_url: str) -> list[str]:
    """Abort every request that leaves the server; return the URLs that tried."""
    blocked: list[str] = []

    def route(request_route) -> None:
        url = request_route.request.url
        if url.startswith(live_url):
            request_route.continue_()
        else:
            blocked.append(url)
            request_route.abort()

    page.route("**/*", route)
    return blocked


def test_swagger_ui_renders_offline(page, live_url):
    blocked = _offline(page, live_url)
    page.goto(f"{live_url}/docs")
    page.wait_for_selector(".swagger-ui .information-container .title", timeout=20_000)
    assert "leakgate" in page.inner_text(".swagger-ui .information-container .title")
    # The operations are listed, so the OpenAPI document was fetched and parsed.
    page.wait_for_selector("#operations-tag-audits, .opblock-tag", timeout=20_000)
    assert page.locator(".opblock").count() > 5
    assert blocked == []
    screenshot(page, "api-docs-swagger")


def test_redoc_renders_offline(page, live_url):
    blocked = _offline(page, live_url)
    page.goto(f"{live_url}/redoc")
    page.wait_for_selector("h1", timeout=20_000)
    assert "leakgate" in page.inner_text("h1")
    page.wait_for_selector("[data-section-id]", timeout=20_000)
    # ReDoc's bundle links its own "powered by" logo on its CDN; the page does not need it.
    assert [url for url in blocked if not url.endswith("/redoc/logo-mini.svg")] == []
    screenshot(page, "api-docs-redoc")
