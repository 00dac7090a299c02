"""Webhook secrets and deliveries: build the signed summary, POST it once, record the attempt."""

from __future__ import annotations

import json
import time

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audits.models import Audit
from app.audits.service import to_read
from app.core.config import Settings
from app.tenants.models import Tenant
from app.webhooks import signing
from app.webhooks.models import WebhookDelivery
from app.webhooks.schemas import DeliveryRead
from app.webhooks.urls import CallbackRefused, check_callback_url


def rotate_secret(*, db_session: Session, tenant: Tenant) -> str:
    """A new secret replaces the old one at once; the clear value is returned only here."""
    tenant.webhook_secret = signing.new_secret()
    db_session.commit()
    return tenant.webhook_secret


def summary_body(audit: Audit) -> bytes:
    """What the receiver gets: the event and the audit as `GET /v1/audits/{id}` shows it."""
    payload = {"event": f"audit.{audit.state}", "audit": to_read(audit).model_dump(mode="json")}
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def attempt(
    db_session: Session, audit_id: str, *, attempt_no: int, settings: Settings
) -> bool | None:
    """POST the summary once and record the attempt. True: delivered (2xx); False: retry
    later; None: nothing to deliver (no callback URL, no secret, or a URL now refused)."""
    audit = db_session.get(Audit, audit_id)
    url = (audit.spec or {}).get("callback_url") if audit else None
    if audit is None or not url:
        return None
    tenant = db_session.get(Tenant, audit.tenant_id)
    body = summary_body(audit)
    event = f"audit.{audit.state}"
    record = WebhookDelivery(audit_id=audit.id, url=url, event=event, attempt=attempt_no)
    started = time.monotonic()
    delivered: bool | None = False
    try:
        if tenant is None or not tenant.webhook_secret:
            raise CallbackRefused("the tenant has no webhook secret any more")
        check_callback_url(url, allow_private=settings.webhook_allow_private)
        response = httpx.post(
            url,
            content=body,
            headers=signing.headers(
                tenant.webhook_secret, body, event=event, delivery=f"{audit.id}.{audit.state}"
            ),
            timeout=settings.webhook_timeout_s,
            follow_redirects=False,  # a redirect could point anywhere, past the URL check
        )
        record.status_code = response.status_code
        delivered = response.is_success
        if not delivered:
            record.error = f"HTTP {response.status_code}: {response.text[:500]}"
    except CallbackRefused as exc:
        record.error = str(exc)
        delivered = None
    except httpx.HTTPError as exc:
        record.error = f"{type(exc).__name__}: {exc}"[:2000]
    record.duration_ms = round(1000 * (time.monotonic() - started))
    db_session.add(record)
    db_session.commit()
    return delivered


def deliveries(*, db_session: Session, audit: Audit) -> list[DeliveryRead]:
    rows = db_session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.audit_id == audit.id)
        .order_by(WebhookDelivery.created_at, WebhookDelivery.attempt)
    )
    return [DeliveryRead.model_validate(row, from_attributes=True) for row in rows]
