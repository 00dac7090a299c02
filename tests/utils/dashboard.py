"""Driving the dashboard as a browser would: cookie login, SVG parsing."""

from __future__ import annotations

SVG_NS = "{http://www.w3.org/2000/svg}"


def login(client, key: str) -> None:
    """Log `client` in with `key`; the dashboard's cookie is then on it."""
    response = dashboard_post(
        client, "/dashboard/login", data={"api_key": key}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/dashboard"


def dashboard_post(client, url: str, data: dict | None = None, **kwargs):
    """POST a dashboard form as a browser would: with the page's CSRF token in the form."""
    if "leakgate_csrf" not in client.cookies:
        client.cookies.delete("leakgate_key")  # the login page renders only when logged out
        assert client.get("/dashboard/login").status_code == 200
    token = client.cookies["leakgate_csrf"]
    return client.post(url, data={**(data or {}), "csrf_token": token}, **kwargs)
