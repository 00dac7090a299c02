"""HTTP routes for webhooks: the tenant's signing secret and an audit's delivery attempts."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.api.deps import CurrentTenant, SessionDep
from app.api.errors import API_ERRORS, error_responses
from app.audits import service as audit_service
from app.webhooks import service
from app.webhooks.schemas import DeliveryRead, WebhookSecret

router = APIRouter(prefix="/v1", tags=["webhooks"], responses=API_ERRORS)


@router.post("/webhook-secret", status_code=status.HTTP_201_CREATED, response_model=WebhookSecret)
def rotate_webhook_secret(tenant: CurrentTenant, db_session: SessionDep) -> WebhookSecret:
    """Create or replace the tenant's webhook secret. It is shown only in this response."""
    return WebhookSecret(secret=service.rotate_secret(db_session=db_session, tenant=tenant))


@router.get(
    "/audits/{audit_id}/deliveries",
    response_model=list[DeliveryRead],
    responses=error_responses(404),
)
def list_deliveries(
    audit_id: str, tenant: CurrentTenant, db_session: SessionDep
) -> list[DeliveryRead]:
    """Every attempt to POST this audit's completion to its callback URL, oldest first."""
    audit = audit_service.get_or_404(db_session=db_session, tenant=tenant, audit_id=audit_id)
    return service.deliveries(db_session=db_session, audit=audit)
