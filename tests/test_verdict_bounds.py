"""Which bounds the worker's verdict weighs: attack bounds, plus once-inserted canaries."""

from __future__ import annotations

import numpy as np
import pytest

from app.audits.schemas import AuditSpec
from attacks.privacy.one_run import one_run_epsilon_lower_bound
from attacks.report import CanaryReport, CanaryResult, CanarySummary, OneRunEpsilon
from workers.pipeline import verdict_bounds


def _spec(**claim) -> AuditSpec:
    return AuditSpec.model_validate(
        {
            "model": {"name": "m"},
            "target": "t",
            "members": "a",
            "non_members": "b",
            "attacks": ["loss", "confidence"],
            "dp_claim": claim or None,
        }
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


def test_once_inserted_canaries_join_the_family_and_decide(attack_scores):
    members, scores = attack_scores
    report = _canaries(1, np.random.default_rng(1))
    bounds = verdict_bounds(_spec(epsilon=1.0), members, scores, report)
    assert [(b.source, b.method) for b in bounds][-1] == ("canaries", "one-run")
    assert len(bounds) == 3 and {b.n_tests for b in bounds} == {3}
    # Its share of the family's confidence makes it no larger than the stand-alone bound.
    assert 1.0 < bounds[-1].value <= report.summary.one_run_bound.value


def test_repeated_canaries_bound_a_group_and_stay_out_of_the_verdict(attack_scores):
    members, scores = attack_scores
    report = _canaries(20, np.random.default_rng(1))
    bounds = verdict_bounds(_spec(epsilon=1.0), members, scores, report)
    assert {b.source for b in bounds} == {"loss", "confidence"}
    assert {b.n_tests for b in bounds} == {2}


def test_gaussian_dp_bounds_only_for_a_dp_sgd_claim(attack_scores):
    members, scores = attack_scores
    declared = verdict_bounds(_spec(epsilon=1.0), members, scores, None)
    assert {b.method for b in declared} == {"clopper-pearson"}
    dp_sgd = {"noise_multiplier": 1.0, "sample_rate": 0.01, "steps": 100}
    accounted = verdict_bounds(_spec(dp_sgd=dp_sgd), members, scores, None)
    assert {b.method for b in accounted} == {"clopper-pearson", "gdp"}
    assert {b.n_tests for b in accounted} == {4}
