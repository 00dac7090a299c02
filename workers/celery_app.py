"""The worker's Celery app: the one `app.core.queue` builds, on which the tasks register under
its task names (the API only sends by those names)."""

from __future__ import annotations

from app.core.queue import DELIVER_WEBHOOK_TASK, RUN_AUDIT_TASK, RUN_SHARD_TASK, get_celery

__all__ = ["DELIVER_WEBHOOK_TASK", "RUN_AUDIT_TASK", "RUN_SHARD_TASK", "celery_app"]

celery_app = get_celery()
