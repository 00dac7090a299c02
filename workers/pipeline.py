"""One audit from stored artifacts to a stored report: score, attack, decide, write.

Orchestration only (stages, progress, cancellation); every statistic comes from `attacks`.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version

import numpy as np
from sqlalchemy.orm import Session
from transformers.utils import logging as hf_logging

from app.artifacts.storage import Storage
from app.audits import lifecycle
from app.audits.models import Audit
from app.audits.schemas import AuditSpec, StoredAuditSpec
from app.core.config import Settings
from app.core.timeutil import utcnow
from attacks.data import Record
from attacks.metrics import evaluate_attack
from attacks.mia import get_attack
from attacks.privacy.empirical import canary_bound, family_bounds
from attacks.privacy.verdict import decide
from attacks.report import (
    REPORT_SCHEMA_VERSION,
    AttackMetrics,
    CanaryReport,
    EpsilonBound,
    LeakageReport,
    RecordAtRisk,
    best_epsilon_bound,
)
from workers.canaries import canary_section
from workers.context import AuditContext, ProgressReporter
from workers.scoring import SCORERS, SignalSet

DEFAULT_DELTA = 1e-5

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
        results, scores = run_attacks(ctx, signal_set)
    canaries = canary_section(
        ctx,
        delta=spec.dp_claim.delta if spec.dp_claim else DEFAULT_DELTA,
        start=0.96,
        end=0.98,
    )
    bounds = verdict_bounds(spec, signal_set.is_member, scores, canaries)
    verdict = decide(spec.dp_claim, bounds)
    best = best_epsilon_bound(bounds)
    report = LeakageReport(
        target=signal_set.target,
        attacks=results,
        epsilon_lower_bound=best,
        epsilon_bounds=bounds,
        verdict=verdict,
        dp_claim=spec.dp_claim,
        utility=signal_set.utility,
        device=signal_set.device,
        timings=ctx.timings,
        library_versions={p: version(p) for p in ("leakgate", "torch", "transformers")},
        created_at=utcnow(),
        reference_models=signal_set.reference_models,
        records_at_risk=records_at_risk(spec, signal_set, results, scores),
        canaries=canaries,
    )
    ctx.progress(0.98, "writing report", force=True)
    lifecycle.succeed(
        db_session,
        audit_id,
        worker=worker,
        report_body=report.model_dump(mode="json"),
        schema_version=REPORT_SCHEMA_VERSION,
        verdict=verdict.status,
        auc=max(r.auc for r in results),
        epsilon_lower_bound=best.value if best else None,
    )


def run_attacks(ctx: AuditContext, signal_set: SignalSet):
    """Each attack scores every audited record; its metrics follow."""
    spec = ctx.spec
    assert spec.attacks is not None
    members = signal_set.is_member
    n_references = (
        signal_set.reference_models.count if signal_set.reference_models is not None else 0
    )
    results, scores = [], {}
    for i, name in enumerate(spec.attacks):
        attack = get_attack(name)
        score = np.asarray(attack.score(signal_set.inputs), dtype=np.float64)
        scores[name] = score
        metrics = evaluate_attack(
            name,
            score[members],
            score[~members],
            n_bootstrap=spec.options.n_bootstrap,
            confidence=spec.options.confidence,
            seed=spec.options.seed,
        )
        if getattr(attack, "needs_references", False):
            metrics = metrics.model_copy(update={"n_reference_models": n_references})
        results.append(metrics)
        ctx.progress(0.86 + 0.1 * (i + 1) / len(spec.attacks), f"attack {name} done")
    return results, scores


def verdict_bounds(
    spec: AuditSpec,
    members: np.ndarray,
    scores: dict[str, np.ndarray],
    canaries: CanaryReport | None,
) -> list[EpsilonBound]:
    """Every epsilon lower bound the verdict weighs, as one Bonferroni family.

    Attack bounds come from the audited records; the canaries' one-run bound joins only when
    each canary was inserted once: a canary repeated r times bounds the privacy of a group of r
    records (about r x epsilon), which the per-record claim does not speak to.
    """
    delta = spec.dp_claim.delta if spec.dp_claim else DEFAULT_DELTA
    per_record_canaries = (
        canaries is not None
        and canaries.summary.one_run_bound is not None
        and all(c.repetitions == 1 for c in canaries.canaries)
    )
    bounds = family_bounds(
        {name: (score[members], score[~members]) for name, score in scores.items()},
        delta=delta,
        confidence=spec.options.confidence,
        seed=spec.options.seed,
        extra_tests=1 if per_record_canaries else 0,
        # The Gaussian-DP statistic is sound only against a claim of DP-SGD training.
        gaussian=spec.dp_claim is not None and spec.dp_claim.dp_sgd is not None,
    )
    if per_record_canaries:
        assert canaries is not None
        bounds.append(
            canary_bound(
                np.array([c.score for c in canaries.canaries]),
                np.array([c.inserted for c in canaries.canaries]),
                delta=delta,
                confidence=spec.options.confidence,
                n_tests=len(bounds) + 1,
            )
        )
    return bounds


def strongest_attack(results: list[AttackMetrics]) -> AttackMetrics:
    """The attack with the highest TPR at 1% FPR (low-FPR power is what matters), then AUC."""

    def key(result: AttackMetrics) -> tuple[float, float]:
        at_1pct = [p.tpr for p in result.tpr_at_fpr if abs(p.fpr - 0.01) < 1e-9]
        return (at_1pct[0] if at_1pct else 0.0, result.auc)

    return max(results, key=key)


def record_hash(record: Record) -> str:
    """Identifies a record without revealing it: of its text, or of its uploaded outputs."""
    content = record.text or json.dumps(record.outputs)
    return hashlib.sha256(content.encode()).hexdigest()


def records_at_risk(
    spec: AuditSpec,
    signal_set: SignalSet,
    results: list[AttackMetrics],
    scores: dict[str, np.ndarray],
) -> list[RecordAtRisk]:
    """The members the strongest attack singles out, with the FPR at which each is flagged."""
    if spec.records_at_risk == 0:
        return []
    attack = strongest_attack(results).name
    score = scores[attack]
    members = signal_set.is_member
    non_member_scores = np.sort(score[~members])
    member_index = np.flatnonzero(members)
    order = member_index[np.argsort(-score[member_index], kind="stable")][: spec.records_at_risk]
    at_risk = []
    for rank, index in enumerate(order, start=1):
        record = signal_set.records[index]
        # Share of non-members scoring at least this high: the FPR a threshold here would cost.
        flagged = len(non_member_scores) - np.searchsorted(non_member_scores, score[index])
        at_risk.append(
            RecordAtRisk(
                rank=rank,
                record_id=record.id,
                sha256=record_hash(record),
                score=float(score[index]),
                flagged_at_fpr=float(flagged / max(len(non_member_scores), 1)),
                attack=attack,
                label=None if record.label is None else str(record.label),
                text=record.text if spec.include_text else None,
            )
        )
    return at_risk
