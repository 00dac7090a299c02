"""Re-sends audits that the broker lost: queued and never claimed, or running with a dead worker.

Submission commits the row before sending the task, so a broker outage at submit time leaves a
queued row and no message; this sweep repairs that, and hands the audit of a dead worker (its
heartbeat stale) to a new delivery. It runs as its own process (`leakgate sweeper`), and as a
thread in each API process unless `LEAKGATE_API_SWEEPER=false`.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from app.audits.enums import AuditState
from app.audits.lifecycle import end
from app.audits.models import Audit
from app.audits.queue import enqueue
from app.core.config import Settings
from app.core.db import session_factory
from app.core.timeutil import utcnow
from app.webhooks.queue import enqueue_delivery

log = logging.getLogger(__name__)


def sweep_once(db_session: Session, settings: Settings) -> list[str]:
    now = utcnow()
    unsent = now - timedelta(seconds=settings.sweep_after_s)
    stale = now - timedelta(seconds=settings.stale_after_s)
    # A queued audit is re-sent once it has waited `sweep_after_s` since it was last sent; a
    # running one as soon as its heartbeat is stale, and then at most once per `stale_after_s`
    # (waiting for `sweep_after_s` since submission too would only delay the takeover).
    candidates = db_session.scalars(
        select(Audit).where(
            Audit.cancel_requested.is_(False),
            or_(
                and_(
                    Audit.state == AuditState.QUEUED,
                    or_(Audit.enqueued_at.is_(None), Audit.enqueued_at < unsent),
                ),
                and_(
                    Audit.state == AuditState.RUNNING,
                    Audit.heartbeat_at < stale,
                    or_(Audit.enqueued_at.is_(None), Audit.enqueued_at < stale),
                ),
            ),
        )
    ).all()
    sent: list[str] = []
    for audit in candidates:
        if audit.attempts >= settings.max_attempts:
            if end(
                db_session,
                audit.id,
                worker=None,
                state=AuditState.FAILED,
                message=f"gave up after {audit.attempts} attempts: the worker was lost each time",
            ):
                enqueue_delivery(audit)
            continue
        try:
            enqueue(audit.id)
        except Exception:
            log.warning("broker unavailable; will retry audit %s later", audit.id)
            break
        audit.enqueued_at = now
        db_session.commit()
        sent.append(audit.id)
    return sent


def sweep_forever(settings: Settings, stop: threading.Event) -> None:
    """Sweep now and every `sweep_interval_s` until `stop` is set; a failed sweep (database or
    broker down) is logged and tried again at the next interval."""
    while not stop.is_set():
        try:
            with session_factory()() as db_session:
                sent = sweep_once(db_session, settings)
            if sent:
                log.info("re-sent %d audit(s): %s", len(sent), ", ".join(sent))
        except Exception:
            log.exception("sweep failed")
        stop.wait(settings.sweep_interval_s)


class Sweeper:
    """A daemon thread that sweeps every `sweep_interval_s` until stopped (the API's)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=sweep_forever, args=(settings, self._stop), name="leakgate-sweeper", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
