"""Debian's headless chromium for the browser tests: where it is, its flags, screenshots."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Flags verified on these machines (see NOTES.md, "Browser tests"); headless is Playwright's.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output"

# The browser tests skip, with this reason, only where the browser itself is missing.
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium; "
    "scripts/test installs it)",
)


def screenshot(page, name: str) -> None:
    """Keep a full-page screenshot of what the test saw (test-output/ is not committed)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
