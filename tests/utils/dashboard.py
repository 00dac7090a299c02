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


def audit_read(**extra):
    """An audit as the API reads it (succeeded, model m v3), with `extra` fields set."""
    from app.audits.schemas import AuditRead, ModelRef
    from app.core.timeutil import utcnow

    now = utcnow()
    fields = dict(
        id="a1",
        model=ModelRef(name="m", version="3"),
        task="text-classification",
        state="succeeded",
        progress=1.0,
        stage="done",
        error=None,
        cancel_requested=False,
        verdict="consistent",
        claimed_epsilon=8.0,
        auc=0.7,
        epsilon_lower_bound=0.1,
        created_at=now,
        started_at=now,
        finished_at=now,
        links={},
        gate=None,
        gate_reasons=[],
        policy=None,
    )
    return AuditRead(**{**fields, **extra})


def render_audit_page(view, **context) -> str:
    """The audit page template, rendered with what the route would pass."""
    from app.dashboard.views import _env

    base = dict(
        tenant=None,
        refresh_s=None,
        audit=context.pop("audit", None) or audit_read(),
        gate=None,
        gate_reasons=[],
        active=False,
        attempts=1,
        requested_attacks=["loss"],
        dp_claim=None,
        queued_for=0.5,
        duration=2.0,
        notice=None,
        view=view,
        report_error=None,
    )
    return _env.get_template("detail.html").render(**{**base, **context})
