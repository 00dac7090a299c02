"""Driving the dashboard as a browser would: cookie login, SVG parsing."""

from __future__ import annotations

SVG_NS = "{http://www.w3.org/2000/svg}"


def login(client, key: str) -> None:
    """Log `client` in with `key`; the dashboard's cookie is then on it."""
    response = client.post("/dashboard/login", data={"api_key": key}, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/dashboard"
