"""Which bounds the verdict weighs, through the one audit recipe the worker calls: one-run
statistics over records and once-inserted canaries; the Gaussian audit only for DP-SGD;
attacks that rank records identically count once; estimates apart."""

from __future__ import annotations

import numpy as np
import pytest

from attacks.audit_recipe import run_audit_recipe
from attacks.privacy.one_run import one_run_epsilon_lower_bound
from attacks.report import (
    CanaryReport,
    CanaryResult,
    CanarySummary,
    DPClaim,
    DPSGDParameters,
    OneRunEpsilon,
)


def dp_sgd_claim(epsilon: float, delta: float = 1e-5) -> DPClaim:
    """A DP-SGD claim with its epsilon given, built without running the accountants."""
    return DPClaim.model_construct(
        epsilon=epsilon,
        delta=delta,
        dp_sgd=DPSGDParameters(noise_multiplier=1.0, sample_rate=0.01, steps=100),
        accounted_epsilon=epsilon,
        accountant=None,
        accountants=[],
        max_record_occurrences=1,
    )


def _canaries(repetitions: int, rng: np.random.Generator) -> CanaryReport:
    """1000 canaries inserted at random; inserted ones score clearly higher."""
    inserted = rng.random(1000) < 0.5
    scores = np.where(inserted, 3.0, 0.0) + rng.normal(0, 1, 1000)
    raw = one_run_epsilon_lower_bound(scores, inserted, delta=1e-5)
    stand_alone = OneRunEpsilon(
        **{k: getattr(raw, k) for k in OneRunEpsilon.model_fields if k != "score"},
        score="label log-probability",
    )
    return CanaryReport(
        summary=CanarySummary(
            canary_set="s",
            kind="audit",
            n_inserted=int(inserted.sum()),
            n_held_out=int((~inserted).sum()),
            one_run_bound=stand_alone,
        ),
        canaries=[
            CanaryResult(id=str(i), inserted=bool(f), repetitions=repetitions, score=float(s))
            for i, (f, s) in enumerate(zip(inserted, scores, strict=True))
        ],
    )


@pytest.fixture
def attack_scores() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    members = np.arange(800) < 400
    return members, {
        "loss": rng.normal(0, 1, 800) + 0.3 * members,
        "confidence": rng.normal(0, 1, 800),
    }


def _recipe(members, scores, claim, canaries=None):
    return run_audit_recipe(scores, members, None, claim, canaries=canaries, n_bootstrap=20)


def test_once_inserted_canaries_join_the_family_and_decide(attack_scores):
    members, scores = attack_scores
    report = _canaries(1, np.random.default_rng(1))
    outcome = _recipe(members, scores, DPClaim(epsilon=1.0), report)
    bounds = outcome.bounds
    assert [(b.source, b.method) for b in bounds][-1] == ("canaries", "one-run")
    assert len(bounds) == 3 and {b.n_tests for b in bounds} == {3}
    assert {b.method for b in bounds} == {"one-run"}
    # Its share of the family's confidence makes it no larger than the stand-alone bound.
    assert 1.0 < bounds[-1].value <= report.summary.one_run_bound.value
    assert outcome.verdict.status == "violation"
    assert outcome.verdict.deciding_bound == "one-run on canaries"


def test_repeated_canaries_bound_a_group_and_stay_out_of_the_verdict(attack_scores):
    members, scores = attack_scores
    outcome = _recipe(
        members, scores, DPClaim(epsilon=1.0), _canaries(20, np.random.default_rng(1))
    )
    assert {b.source for b in outcome.bounds} == {"loss", "confidence"}
    assert {b.n_tests for b in outcome.bounds} == {2}
    assert outcome.verdict.status == "consistent"


def test_gaussian_one_run_bounds_only_for_a_dp_sgd_claim(attack_scores):
    members, scores = attack_scores
    declared = _recipe(members, scores, DPClaim(epsilon=1.0))
    assert {b.method for b in declared.bounds} == {"one-run"}
    assert {e.method for e in declared.estimates} == {"clopper-pearson"}
    accounted = _recipe(members, scores, dp_sgd_claim(1.0))
    assert {b.method for b in accounted.bounds} == {"one-run", "fdp-one-run"}
    assert {b.n_tests for b in accounted.bounds} == {4}
    assert {e.method for e in accounted.estimates} == {"clopper-pearson", "gdp"}
    assert all("repeated training runs" in e.assumes for e in accounted.estimates)
    assert all("assumed exchangeable" in b.assumes for b in accounted.bounds)


def test_attacks_ranking_records_identically_count_once(attack_scores):
    members, scores = attack_scores
    loss = scores["loss"]
    same = {"loss": loss, "confidence": np.exp(-np.exp(-loss)), "noise": scores["confidence"]}
    outcome = _recipe(members, same, DPClaim(epsilon=1.0))
    assert len(outcome.bounds) == 2 and {b.n_tests for b in outcome.bounds} == {2}
    joined = next(b for b in outcome.bounds if b.source == "loss")
    assert joined.details["same_ranking"] == "confidence"
    assert len(outcome.estimates) == 2
