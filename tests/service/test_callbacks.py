"""Callback URLs are checked at submission, and the webhook secret is the tenant's own."""

from __future__ import annotations

import pytest


def spec(ids: dict[str, str], url: str) -> dict:
    return {"model": {"name": "hooked"}, **ids, "callback_url": url}


def test_a_callback_needs_a_secret_first(client, auth, uploaded):
    response = client.post("/v1/audits", json=spec(uploaded, "http://127.0.0.1:9/h"), headers=auth)
    assert response.status_code == 422
    assert "POST /v1/webhook-secret" in response.text
    assert client.get("/v1/audits", headers=auth).json()["total"] == 0

    first = client.post("/v1/webhook-secret", headers=auth)
    assert first.status_code == 201 and first.json()["secret"].startswith("whsec_")
    second = client.post("/v1/webhook-secret", headers=auth).json()["secret"]
    assert second != first.json()["secret"]
    response = client.post("/v1/audits", json=spec(uploaded, "http://127.0.0.1:9/h"), headers=auth)
    assert response.status_code == 202, response.text
    assert response.json()["links"]["deliveries"].endswith("/deliveries")


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "not a url"])
def test_only_http_urls(client, auth, uploaded, url):
    client.post("/v1/webhook-secret", headers=auth)
    response = client.post("/v1/audits", json=spec(uploaded, url), headers=auth)
    assert response.status_code == 422
    assert "callback_url" in response.text


def test_private_addresses_can_be_forbidden(client, auth, uploaded, set_env):
    client.post("/v1/webhook-secret", headers=auth)
    set_env(LEAKGATE_WEBHOOK_ALLOW_PRIVATE="false")
    for url in ("http://127.0.0.1:8080/h", "http://10.1.2.3/h", "http://[::1]/h"):
        response = client.post("/v1/audits", json=spec(uploaded, url), headers=auth)
        assert response.status_code == 422, url
        assert "non-public address" in response.text


def test_deliveries_of_another_tenants_audit_are_404(client, auth, uploaded):
    from tests.utils.factories import new_key

    audit = client.post("/v1/audits", json={"model": {"name": "x"}, **uploaded}, headers=auth)
    stranger = {"Authorization": f"Bearer {new_key()}"}
    path = f"/v1/audits/{audit.json()['id']}/deliveries"
    assert client.get(path, headers=auth).json() == []
    assert client.get(path, headers=stranger).status_code == 404
