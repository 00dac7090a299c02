"""State changes of a running audit, each one an atomic, guarded UPDATE.

Guards make redelivery safe: only one worker can claim an audit, and only the claiming worker
can write its progress or its report.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Result, and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audits.enums import AuditState
from app.audits.models import Audit, Report
from app.core.timeutil import utcnow
from app.policies.gate import evaluate
from app.policies.schemas import PolicyRules

MAX_ATTEMPTS = 3  # the default of the `max_attempts` setting
log = logging.getLogger(__name__)


class AuditCancelled(Exception):
    """Raised inside the worker when the user asked to cancel; ends the audit as cancelled."""


class LostClaim(Exception):
    """Another worker took the audit over (ours was presumed dead); stop without writing."""


def _rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE matched: the guard of every transition (DML gives a CursorResult)."""
    return cast(CursorResult[Any], result).rowcount


def claim(
    db_session: Session,
    audit_id: str,
    *,
    worker: str,
    stale_after_s: float,
    max_attempts: int = MAX_ATTEMPTS,
) -> bool:
    """Take the audit if it is queued, or running with a heartbeat too old to be alive."""
    now = utcnow()
    stale = now - timedelta(seconds=stale_after_s)
    result = db_session.execute(
        update(Audit)
        .where(
            Audit.id == audit_id,
            Audit.cancel_requested.is_(False),
            Audit.attempts < max_attempts,
            or_(
                Audit.state == AuditState.QUEUED,
                and_(Audit.state == AuditState.RUNNING, Audit.heartbeat_at < stale),
            ),
        )
        .values(
            state=AuditState.RUNNING,
            worker=worker,
            started_at=now,
            heartbeat_at=now,
            progress=0.0,
            stage="starting",
            attempts=Audit.attempts + 1,
        )
    )
    db_session.commit()
    return _rowcount(result) == 1


def beat(db_session: Session, audit_id: str, *, worker: str) -> bool:
    """Refresh the heartbeat of an audit this worker still holds; False once it does not."""
    result = db_session.execute(
        update(Audit)
        .where(Audit.id == audit_id, Audit.worker == worker, Audit.state == AuditState.RUNNING)
        .values(heartbeat_at=utcnow())
    )
    db_session.commit()
    return _rowcount(result) == 1


def report_progress(
    db_session: Session, audit_id: str, *, worker: str, progress: float, stage: str
) -> None:
    """Record progress and heartbeat; raise if the user cancelled or the claim was lost."""
    result = db_session.execute(
        update(Audit)
        .where(Audit.id == audit_id, Audit.worker == worker, Audit.state == AuditState.RUNNING)
        .values(progress=max(0.0, min(1.0, progress)), stage=stage, heartbeat_at=utcnow())
    )
    db_session.commit()
    if _rowcount(result) != 1:
        raise LostClaim(audit_id)
    cancel = db_session.scalar(select(Audit.cancel_requested).where(Audit.id == audit_id))
    if cancel:
        raise AuditCancelled(audit_id)


def succeed(
    db_session: Session,
    audit_id: str,
    *,
    worker: str,
    report_body: dict,
    schema_version: int,
    verdict: str,
    auc: float | None,
    epsilon_lower_bound: float | None,
) -> bool:
    """Write the report, the gate by the audit's policy snapshot and the final state in one
    transaction; a second report is refused."""
    snapshot = db_session.scalar(select(Audit.policy).where(Audit.id == audit_id))
    rules = PolicyRules.model_validate(snapshot["rules"]) if snapshot else PolicyRules()
    try:
        gate, reasons = evaluate(rules, report_body)
    except (KeyError, TypeError, ValueError):  # a body of another schema: store it ungated
        log.warning("audit %s: report not in the current schema; gate not evaluated", audit_id)
        gate, reasons = None, []
    result = db_session.execute(
        update(Audit)
        .where(Audit.id == audit_id, Audit.worker == worker, Audit.state == AuditState.RUNNING)
        .values(
            state=AuditState.SUCCEEDED,
            progress=1.0,
            stage="done",
            verdict=verdict,
            auc=auc,
            epsilon_lower_bound=epsilon_lower_bound,
            gate=gate,
            gate_reasons=[r.model_dump(mode="json") for r in reasons],
            finished_at=utcnow(),
        )
    )
    if _rowcount(result) != 1:
        db_session.rollback()
        return False
    db_session.add(Report(audit_id=audit_id, schema_version=schema_version, body=report_body))
    try:
        db_session.commit()
    except IntegrityError:
        db_session.rollback()
        return False
    return True


def end(
    db_session: Session, audit_id: str, *, worker: str | None, state: AuditState, message: str
) -> bool:
    """Finish as failed or cancelled (guarded by the claim when a worker is named); True when
    this call ended it."""
    query = update(Audit).where(
        Audit.id == audit_id, Audit.state.in_((AuditState.QUEUED, AuditState.RUNNING))
    )
    if worker is not None:
        query = query.where(Audit.worker == worker)
    result = db_session.execute(
        query.values(
            state=state,
            error=message if state == AuditState.FAILED else None,
            stage=message if state == AuditState.CANCELLED else "failed",
            finished_at=utcnow(),
        )
    )
    db_session.commit()
    return _rowcount(result) == 1
