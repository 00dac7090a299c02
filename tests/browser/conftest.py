"""A live leakgate server and Debian's headless chromium, driven by Playwright.

The server is the real app under uvicorn in a thread, on the PostgreSQL backend of the test
run; audits are created through its HTTP API and moved along through `app.audits.lifecycle`,
the functions the worker calls. Screenshots of the main pages go to `test-output/`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.utils.browser import CHROMIUM, CHROMIUM_ARGS
from tests.utils.factories import dataset_bytes, tiny_model_archive, upload
from tests.utils.processes import free_port


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def live_url(activate) -> Iterator[str]:
    """The app served over real HTTP for the duration of one test."""
    import uvicorn

    from app.main import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(run_sweeper=False), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def api(live_url, api_key) -> Iterator[httpx.Client]:
    """An API client of the first tenant against the live server."""
    with httpx.Client(
        base_url=live_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="session")
def model_body(tmp_path_factory) -> bytes:
    """One tiny model for the whole run: its upload is checked once per backend (same sha256)."""
    return tiny_model_archive(tmp_path_factory.mktemp("model"))


@pytest.fixture
def uploaded(api, model_body) -> dict[str, str]:
    ids = {}
    for field, body, kind, name in (
        ("target", model_body, "model", "tiny.tar.gz"),
        ("members", dataset_bytes(20), "dataset", "members.jsonl"),
        ("non_members", dataset_bytes(20, offset=100), "dataset", "non_members.jsonl"),
    ):
        response = upload(api, {}, body, kind, name)
        assert response.status_code == 201, response.text
        ids[field] = response.json()["id"]
    return ids
