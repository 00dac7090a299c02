"""Celery task that POSTs an ended audit's signed summary, retrying with exponential backoff."""

from __future__ import annotations

from app.core.config import get_settings
from app.core.db import session_factory
from app.webhooks.service import attempt
from workers.celery_app import DELIVER_WEBHOOK_TASK, celery_app


@celery_app.task(name=DELIVER_WEBHOOK_TASK, bind=True, acks_late=True)
def deliver_webhook(self, audit_id: str) -> str:
    """One attempt per run; a failure re-queues the task after backoff * 2**(attempt - 1)."""
    settings = get_settings()
    number = self.request.retries + 1
    with session_factory()() as db_session:
        delivered = attempt(db_session, audit_id, attempt_no=number, settings=settings)
    if delivered is None:
        return "skipped"
    if delivered:
        return "delivered"
    if number >= settings.webhook_max_attempts:
        return "gave up"
    raise self.retry(
        countdown=settings.webhook_backoff_s * 2 ** (number - 1),
        max_retries=settings.webhook_max_attempts - 1,
    )
