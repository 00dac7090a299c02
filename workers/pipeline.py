"""One audit from stored artifacts to a stored report: score, attack, decide, write.

Orchestration only (stages, progress, cancellation); which bounds decide, the strongest
attack, records at risk and report assembly are `attacks.audit_recipe`'s, the one recipe the
bench and the validation tests call too.
"""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
from sqlalchemy.orm import Session
from transformers.utils import logging as hf_logging

from app.artifacts.storage import Storage
from app.audits import lifecycle
from app.audits.models import Audit
from app.audits.schemas import StoredAuditSpec
from app.core.config import Settings
from app.core.timeutil import utcnow
from attacks.audit_recipe import DEFAULT_DELTA, run_audit_recipe
from attacks.mia import get_attack
from attacks.privacy.verdict import compared_claim
from attacks.report import REPORT_SCHEMA_VERSION
from workers.canaries import canary_section
from workers.context import AuditContext, ProgressReporter
from workers.scoring import SCORERS, SignalSet

# Worker logs are for operators; transformers' per-load progress bars only add noise there.
hf_logging.disable_progress_bar()


def run_pipeline(db_session: Session, audit_id: str, *, worker: str, settings: Settings) -> None:
    audit = db_session.get(Audit, audit_id)
    assert audit is not None and settings.storage_dir is not None
    spec = StoredAuditSpec.model_validate(audit.spec)  # resolved at submission: no accounting
    ctx = AuditContext(
        db_session=db_session,
        audit=audit,
        spec=spec,
        settings=settings,
        storage=Storage(settings.storage_dir),
        progress=ProgressReporter(db_session, audit_id, worker),
    )
    signal_set = SCORERS[spec.task](ctx)

    ctx.progress(0.86, "running attacks", force=True)
    with ctx.timed("attacks"):
        scores, reference_counts = run_attacks(ctx, signal_set)
    canaries = canary_section(ctx, delta=_bound_delta(spec), start=0.96, end=0.98)
    with ctx.timed("verdict"):
        outcome = run_audit_recipe(
            scores,
            signal_set.is_member,
            signal_set.records,
            spec.dp_claim,
            membership_source=spec.membership_source,
            canaries=canaries,
            confidence=spec.options.confidence,
            seed=spec.options.seed,
            n_bootstrap=spec.options.n_bootstrap,
            n_records_at_risk=spec.records_at_risk,
            include_text=spec.include_text,
            reference_counts=reference_counts,
            correct=signal_set.inputs.target.get("correct"),
        )
    report = outcome.report(
        target=signal_set.target,
        dp_claim=spec.dp_claim,
        utility=signal_set.utility,
        device=signal_set.device,
        timings=ctx.timings,
        library_versions={p: version(p) for p in ("leakgate", "torch", "transformers")},
        created_at=utcnow(),
        reference_models=signal_set.reference_models,
        canaries=canaries,
    )
    best = report.epsilon_lower_bound
    ctx.progress(0.98, "writing report", force=True)
    lifecycle.succeed(
        db_session,
        audit_id,
        worker=worker,
        report_body=report.model_dump(mode="json"),
        schema_version=REPORT_SCHEMA_VERSION,
        verdict=report.verdict.status,
        auc=max(r.auc for r in report.attacks),
        epsilon_lower_bound=best.value if best else None,
    )


def _bound_delta(spec: StoredAuditSpec) -> float:
    """The delta the canaries' stand-alone bound uses: the (group) claim's, as the verdict's."""
    if spec.dp_claim is None:
        return DEFAULT_DELTA
    _, delta, _ = compared_claim(spec.dp_claim)
    return delta if delta < 1 else spec.dp_claim.delta


def run_attacks(
    ctx: AuditContext, signal_set: SignalSet
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Each attack scores every audited record; the recipe turns scores into metrics."""
    spec = ctx.spec
    assert spec.attacks is not None
    n_references = (
        signal_set.reference_models.count if signal_set.reference_models is not None else 0
    )
    scores, reference_counts = {}, {}
    for i, name in enumerate(spec.attacks):
        attack = get_attack(name)
        scores[name] = np.asarray(attack.score(signal_set.inputs), dtype=np.float64)
        if getattr(attack, "needs_references", False):
            reference_counts[name] = n_references
        ctx.progress(0.86 + 0.1 * (i + 1) / len(spec.attacks), f"attack {name} done")
    return scores, reference_counts
