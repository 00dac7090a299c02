"""Sending audits to the broker by task name, so the API never imports the heavy task code."""

from __future__ import annotations

from app.core.queue import RUN_AUDIT_TASK, get_celery


def enqueue(audit_id: str) -> None:
    celery = get_celery()
    celery.send_task(RUN_AUDIT_TASK, args=[audit_id], queue=celery.conf.task_default_queue)
