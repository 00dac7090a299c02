"""The one audit recipe: from attack scores and records to metrics, bounds and the verdict.

The worker, the validation bench and the tests all call `run_audit_recipe`, so the evidence
published for leakgate and the service's verdicts cannot drift apart. Steps:

1. data checks: duplicates and member/non-member overlaps removed (`attacks.data_checks`);
2. attack metrics on the unique records;
3. the blind baseline (`attacks.blind_baseline`) on the unique records;
4. the deciding family (one-run statistics only): Steinke over records and, for a DP-SGD
   claim, the f-DP Gaussian audit, per group of attacks that rank records identically, over
   records occurring once in their file, when their membership was a fair coin (a
   service-drawn audit split) or the pipeline's records pass the blind baseline; plus both
   statistics over canaries inserted once;
5. estimates (Clopper-Pearson, Gaussian-DP over records; they assume repeated training runs),
   their own Bonferroni family, reported but never deciding;
6. the verdict against the claim, as the group claim for `max_record_occurrences`;
7. the records at risk under the strongest attack.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np

from attacks.blind_baseline import blind_baseline as run_blind_baseline
from attacks.data import Record
from attacks.data_checks import check_records
from attacks.metrics import evaluate_attack
from attacks.privacy.empirical import family_bounds
from attacks.privacy.one_run_family import (
    fdp_bound,
    one_run_tests_per_attack,
    record_bounds,
    same_ranking_groups,
    steinke_bound,
)
from attacks.privacy.verdict import compared_claim, decide
from attacks.report import (
    AttackMetrics,
    BlindBaseline,
    CanaryReport,
    DataChecks,
    DPClaim,
    EpsilonBound,
    LeakageReport,
    RecordAtRisk,
    ReferenceModels,
    ScoreHistogram,
    Slices,
    TargetInfo,
    Utility,
    Verdict,
    best_epsilon_bound,
)
from attacks.slices import score_histogram, slice_metrics

DEFAULT_DELTA = 1e-5
MembershipSource = Literal["service", "pipeline"]
ESTIMATE_ASSUMES = (
    "repeated training runs: treats the records of one run as independent trials "
    "(Jagielski et al. 2020; Nasr et al. 2023); an estimate, never decides"
)


@dataclass
class AuditOutcome:
    """Everything the recipe decided; `report()` wraps it with what only the caller knows."""

    attacks: list[AttackMetrics]
    bounds: list[EpsilonBound]
    estimates: list[EpsilonBound]
    verdict: Verdict
    membership_source: MembershipSource
    data_checks: DataChecks | None = None
    blind_baseline: BlindBaseline | None = None
    records_at_risk: list[RecordAtRisk] = field(default_factory=list)
    score_histograms: list[ScoreHistogram] = field(default_factory=list)
    slices: Slices | None = None

    def report(
        self,
        *,
        target: TargetInfo,
        dp_claim: DPClaim | None,
        utility: Utility | None,
        device: str,
        timings: dict[str, float],
        library_versions: dict[str, str],
        created_at: datetime,
        reference_models: ReferenceModels | None = None,
        canaries: CanaryReport | None = None,
    ) -> LeakageReport:
        return LeakageReport(
            target=target,
            attacks=self.attacks,
            epsilon_lower_bound=best_epsilon_bound(self.bounds),
            epsilon_bounds=self.bounds,
            epsilon_estimates=self.estimates,
            verdict=self.verdict,
            dp_claim=dp_claim,
            utility=utility,
            device=device,
            timings=timings,
            library_versions=library_versions,
            created_at=created_at,
            reference_models=reference_models,
            records_at_risk=self.records_at_risk,
            canaries=canaries,
            membership_source=self.membership_source,
            data_checks=self.data_checks,
            blind_baseline=self.blind_baseline,
            score_histograms=self.score_histograms,
            slices=self.slices,
        )


def run_audit_recipe(
    scores: dict[str, np.ndarray],
    is_member: np.ndarray,
    records: Sequence[Record] | None,
    claim: DPClaim | None,
    *,
    membership_source: MembershipSource = "pipeline",
    canaries: CanaryReport | None = None,
    confidence: float = 0.95,
    seed: int = 0,
    n_bootstrap: int = 1000,
    n_records_at_risk: int = 20,
    include_text: bool = False,
    reference_counts: dict[str, int] | None = None,
    blind: bool = True,
    correct: np.ndarray | None = None,
) -> AuditOutcome:
    """Metrics, bounds and verdict for one audit.

    scores: attack name -> one score per audited record (higher = more likely a member),
        records in the order of `is_member`.
    is_member: bool per record: in the training set or not.
    records: the audited records (text, label, id) in the same order, for the data checks,
        the blind baseline and the records at risk; None (a bench with arrays only) skips
        them, and the records then count as assumed exchangeable without a check.
    claim: the DP claim, or None; its `max_record_occurrences` (default 1) turns it into
        the group claim the bounds are compared with.
    membership_source: "service" when leakgate's own coin drew membership (an audit split:
        proven protocol), "pipeline" when the pipeline chose the files.
    canaries: the canary section measured on the model, if any; its canaries join the
        deciding family when each was inserted once.
    reference_counts: attack name -> number of reference models it used (for the metrics).
    blind: run the blind baseline (the bench may switch it off for arrays without records).
    correct: whether the model classified each record correctly (classifiers), for the
        correct/incorrect slices; the class slices read the records' labels.
    """
    truth = np.asarray(is_member, dtype=bool).ravel()
    arrays = {name: np.asarray(s, dtype=np.float64).ravel() for name, s in scores.items()}
    if not arrays:
        raise ValueError("need the scores of at least one attack")
    for name, values in arrays.items():
        if values.shape != truth.shape:
            raise ValueError(f"attack {name!r} scored {values.size} records, not {truth.size}")
    if records is not None and len(records) != truth.size:
        raise ValueError(f"{len(records)} records but {truth.size} membership flags")
    if correct is not None and np.asarray(correct).size != truth.size:
        raise ValueError(f"{np.asarray(correct).size} correctness flags but {truth.size} records")

    checks = None
    keep = once = np.arange(truth.size)
    if records is not None:
        clean = check_records(records, truth)
        checks, keep, once = clean.section, clean.keep, clean.once
    kept = truth[keep]
    if kept.all() or not kept.any():
        raise ValueError(
            "after removing duplicates and records found in both sets, no members or no "
            "non-members are left to audit"
        )

    counts = reference_counts or {}
    attacks = []
    for name, values in arrays.items():
        metrics = evaluate_attack(
            name,
            values[keep][kept],
            values[keep][~kept],
            n_bootstrap=n_bootstrap,
            confidence=confidence,
            seed=seed,
        )
        if counts.get(name):
            metrics = metrics.model_copy(update={"n_reference_models": counts[name]})
        attacks.append(metrics)

    baseline = None
    if records is not None and blind:
        baseline = run_blind_baseline(
            [records[int(i)] for i in keep], kept, confidence=confidence, seed=seed
        )

    delta = DEFAULT_DELTA
    if claim is not None:
        _, compared_delta, _ = compared_claim(claim)
        delta = compared_delta if compared_delta < 1 else claim.delta
    gaussian = claim is not None and claim.dp_sgd is not None and delta > 0
    records_decide = membership_source == "service" or (
        baseline is None or baseline.status != "separable"
    )
    once_truth = truth[once]
    records_decide = records_decide and bool(once_truth.any() and (~once_truth).any())
    groups = same_ranking_groups({name: values[once] for name, values in arrays.items()})
    canaries_decide = (
        canaries is not None
        and canaries.summary.one_run_bound is not None
        and bool(canaries.canaries)
        and all(c.repetitions == 1 for c in canaries.canaries)
    )
    per_attack = one_run_tests_per_attack(gaussian)
    n_tests = (len(groups) * per_attack if records_decide else 0) + (
        per_attack if canaries_decide else 0
    )
    bounds: list[EpsilonBound] = []
    if records_decide:
        bounds += record_bounds(
            {name: values[once] for name, values in arrays.items()},
            once_truth,
            evidence="audit-split" if membership_source == "service" else "assumed-exchangeable",
            delta=delta,
            confidence=confidence,
            n_tests=n_tests,
            gaussian=gaussian,
            seed=seed,
        )
    if canaries_decide:
        assert canaries is not None
        canary_scores = np.array([c.score for c in canaries.canaries])
        inserted = np.array([c.inserted for c in canaries.canaries])
        bounds.append(
            steinke_bound(
                canary_scores,
                inserted,
                source="canaries",
                evidence="canaries",
                delta=delta,
                confidence=confidence,
                n_tests=n_tests,
            )
        )
        if gaussian and inserted.any() and (~inserted).any():
            bounds.append(
                fdp_bound(
                    canary_scores,
                    inserted,
                    source="canaries",
                    evidence="canaries",
                    seed=seed,
                    delta=delta,
                    confidence=confidence,
                    n_tests=n_tests,
                )
            )
    # A group may have been skipped (one class only): the family is never larger than n_tests.

    estimates = _estimates(arrays, truth, keep, groups, delta, confidence, seed, gaussian)
    verdict = decide(
        claim,
        bounds,
        estimates=estimates,
        blind_baseline=baseline,
        membership_source=membership_source,
    )
    at_risk = []
    if records is not None and n_records_at_risk > 0:
        at_risk = records_at_risk(
            [records[int(i)] for i in keep],
            kept,
            attacks,
            {name: values[keep] for name, values in arrays.items()},
            limit=n_records_at_risk,
            include_text=include_text,
        )
    histograms = [
        score_histogram(name, values[keep][kept], values[keep][~kept])
        for name, values in arrays.items()
    ]
    slices = slice_metrics(
        {name: values[keep] for name, values in arrays.items()},
        kept,
        labels=None if records is None else [records[int(i)].label for i in keep],
        correct=None if correct is None else np.asarray(correct, dtype=bool).ravel()[keep],
        confidence=confidence,
    )
    return AuditOutcome(
        attacks=attacks,
        bounds=bounds,
        estimates=estimates,
        verdict=verdict,
        membership_source=membership_source,
        data_checks=checks,
        blind_baseline=baseline,
        records_at_risk=at_risk,
        score_histograms=histograms,
        slices=slices,
    )


def _estimates(
    arrays: dict[str, np.ndarray],
    truth: np.ndarray,
    keep: np.ndarray,
    groups: list[list[str]],
    delta: float,
    confidence: float,
    seed: int,
    gaussian: bool,
) -> list[EpsilonBound]:
    """Clopper-Pearson (and Gaussian-DP) bounds over the unique records, labelled estimates."""
    kept = truth[keep]
    if kept.sum() < 2 or (~kept).sum() < 2:
        return []
    representatives = {group[0]: arrays[group[0]][keep] for group in groups}
    estimates = family_bounds(
        {name: (values[kept], values[~kept]) for name, values in representatives.items()},
        delta=delta,
        confidence=confidence,
        seed=seed,
        gaussian=gaussian,
    )
    return [e.model_copy(update={"assumes": ESTIMATE_ASSUMES}) for e in estimates]


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
    records: Sequence[Record],
    is_member: np.ndarray,
    results: list[AttackMetrics],
    scores: dict[str, np.ndarray],
    *,
    limit: int,
    include_text: bool = False,
) -> list[RecordAtRisk]:
    """The members the strongest attack singles out, with the FPR at which each is flagged."""
    if limit == 0:
        return []
    attack = strongest_attack(results).name
    score = scores[attack]
    members = np.asarray(is_member, dtype=bool)
    non_member_scores = np.sort(score[~members])
    member_index = np.flatnonzero(members)
    order = member_index[np.argsort(-score[member_index], kind="stable")][:limit]
    at_risk = []
    for rank, index in enumerate(order, start=1):
        record = records[index]
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
                text=record.text if include_text else None,
            )
        )
    return at_risk
