"""Sending a webhook delivery to the broker once an audit has ended."""

from __future__ import annotations

import logging

from app.audits.models import Audit
from app.core.queue import DELIVER_WEBHOOK_TASK, get_celery

log = logging.getLogger(__name__)


def enqueue_delivery(audit: Audit) -> bool:
    """Queue the POST to the audit's callback URL, if it has one. Call after the final state
    is committed. A broker outage here loses the notification (logged), never the audit."""
    if not (audit.spec or {}).get("callback_url"):
        return False
    celery = get_celery()
    try:
        celery.send_task(
            DELIVER_WEBHOOK_TASK, args=[audit.id], queue=celery.conf.task_default_queue
        )
    except Exception:
        log.warning("could not queue the webhook of audit %s", audit.id, exc_info=True)
        return False
    return True
