"""Submit, read, list and cancel audits. Specs are checked against stored artifacts first."""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.artifacts import service as artifact_service
from app.artifacts.models import Artifact
from app.audits.models import FINAL_STATES, Audit, Report
from app.audits.queue import enqueue
from app.audits.schemas import AuditRead, AuditSpec, ModelRef
from app.core.timeutil import utcnow
from app.tenants.models import Tenant

log = logging.getLogger(__name__)


class SpecRejected(ValueError):
    """The spec is well-formed but refers to something unusable (HTTP 422)."""


def _artifact(
    db_session: Session, tenant: Tenant, field: str, artifact_id: str, kind: str
) -> Artifact:
    artifact = artifact_service.get(db_session=db_session, tenant=tenant, artifact_id=artifact_id)
    if artifact is None:
        raise SpecRejected(
            f"{field}: no artifact {artifact_id!r} (upload it with POST /v1/artifacts)"
        )
    if artifact.kind != kind:
        raise SpecRejected(f"{field}: artifact {artifact_id!r} is a {artifact.kind}, not a {kind}")
    return artifact


def check_spec(*, db_session: Session, tenant: Tenant, spec: AuditSpec) -> None:
    """Everything that can fail before a worker touches the audit fails here, with a reason."""
    target = _artifact(db_session, tenant, "target", spec.target, "model")
    datasets = {
        "members": _artifact(db_session, tenant, "members", spec.members, "dataset"),
        "non_members": _artifact(db_session, tenant, "non_members", spec.non_members, "dataset"),
    }
    architectures = target.meta.get("architectures") or []
    if spec.task == "text-classification" and not any(
        a.endswith("ForSequenceClassification") for a in architectures
    ):
        raise SpecRejected(
            f"target: task text-classification needs a *ForSequenceClassification model; "
            f"config.json names {architectures or 'no architecture'}"
        )
    known = set(target.meta.get("labels") or [])
    num_labels = int(target.meta.get("num_labels") or 0)
    for field, dataset in datasets.items():
        labels = dataset.meta.get("labels") or []
        unknown = [
            lab
            for lab in labels
            if lab not in known and not (lab.lstrip("-").isdigit() and 0 <= int(lab) < num_labels)
        ]
        if unknown:
            raise SpecRejected(
                f"{field}: labels {unknown[:5]} are not classes of the model "
                f"(its labels: {sorted(known)[:20]})"
            )


def submit(*, db_session: Session, tenant: Tenant, spec: AuditSpec) -> Audit:
    """Commit the audit row, then send the task; a failed send is retried by the sweeper."""
    check_spec(db_session=db_session, tenant=tenant, spec=spec)
    audit = Audit(
        tenant_id=tenant.id,
        model_name=spec.model.name,
        model_version=spec.model.version,
        task=spec.task,
        spec=spec.model_dump(mode="json"),
        state="queued",
        stage="waiting for a worker",
    )
    db_session.add(audit)
    db_session.commit()
    try:
        enqueue(audit.id)
    except Exception:  # the broker may be down; the audit is safe in the database
        log.warning(
            "could not enqueue audit %s now; the sweeper will retry", audit.id, exc_info=True
        )
    else:
        audit.enqueued_at = utcnow()
        db_session.commit()
    return audit


def get(*, db_session: Session, tenant: Tenant, audit_id: str) -> Audit | None:
    return db_session.scalar(
        select(Audit).where(Audit.id == audit_id, Audit.tenant_id == tenant.id)
    )


def get_all(
    *,
    db_session: Session,
    tenant: Tenant,
    model_name: str | None = None,
    state: str | None = None,
    verdict: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Audit], int]:
    query = select(Audit).where(Audit.tenant_id == tenant.id)
    if model_name:
        query = query.where(Audit.model_name == model_name)
    if state:
        query = query.where(Audit.state == state)
    if verdict:
        query = query.where(Audit.verdict == verdict)
    total = db_session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = db_session.scalars(
        query.order_by(Audit.created_at.desc(), Audit.id).limit(limit).offset(offset)
    )
    return list(items), total


def cancel(*, db_session: Session, audit: Audit) -> Audit:
    """A queued audit ends now; a running one is flagged and its worker stops between steps."""
    if audit.state in FINAL_STATES:
        raise SpecRejected(f"audit {audit.id} has already ended ({audit.state})")
    if audit.state == "queued":
        audit.state = "cancelled"
        audit.stage = "cancelled before a worker started it"
        audit.finished_at = utcnow()
    audit.cancel_requested = True
    db_session.commit()
    return audit


def get_report(*, db_session: Session, audit: Audit) -> Report | None:
    return db_session.get(Report, audit.id)


def to_read(audit: Audit) -> AuditRead:
    return AuditRead(
        id=audit.id,
        model=ModelRef(name=audit.model_name, version=audit.model_version),
        task=audit.task,
        state=audit.state,  # type: ignore[arg-type]
        progress=audit.progress,
        stage=audit.stage,
        error=audit.error,
        cancel_requested=audit.cancel_requested,
        verdict=audit.verdict,
        auc=audit.auc,
        epsilon_lower_bound=audit.epsilon_lower_bound,
        created_at=audit.created_at,
        started_at=audit.started_at,
        finished_at=audit.finished_at,
        links={
            "self": f"/v1/audits/{audit.id}",
            "report": f"/v1/audits/{audit.id}/report",
            "dashboard": f"/dashboard/audits/{audit.id}",
        },
    )
