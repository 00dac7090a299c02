"""Tests for the versioned leakage-report schema, built from real attack outputs."""

from datetime import UTC, datetime

import numpy as np
import pydantic
import pytest

from attacks.metrics import evaluate_attack
from attacks.privacy import decide, epsilon_lower_bound, family_bounds
from attacks.report import (
    REPORT_SCHEMA_VERSION,
    DPClaim,
    LeakageReport,
    TargetInfo,
    Utility,
    best_epsilon_bound,
)


def _report() -> LeakageReport:
    rng = np.random.default_rng(0)
    scores = {
        "loss": (rng.normal(1, 1, 400), rng.normal(0, 1, 400)),
        "confidence": (rng.normal(0.5, 1, 400), rng.normal(0, 1, 400)),
    }
    bounds = family_bounds(scores, delta=1e-5, gaussian=True)
    claim = DPClaim(epsilon=8.0)
    best = best_epsilon_bound(bounds)
    return LeakageReport(
        target=TargetInfo(task="text-classification", model_type="bert", num_labels=2),
        attacks=[evaluate_attack(name, m, n, n_bootstrap=50) for name, (m, n) in scores.items()],
        epsilon_lower_bound=best,
        epsilon_bounds=bounds,
        verdict=decide(claim, bounds),
        dp_claim=claim,
        utility=Utility(
            non_member_accuracy=0.8, member_accuracy=0.9, n_non_members=400, n_members=400
        ),
        device="cpu",
        timings={"logits": 1.5},
        library_versions={"numpy": np.__version__},
        created_at=datetime.now(UTC),
    )


def test_report_round_trips_through_json():
    report = _report()
    assert report.schema_version == REPORT_SCHEMA_VERSION == 2
    assert LeakageReport.model_validate_json(report.model_dump_json()) == report


def test_unknown_fields_are_rejected():
    data = _report().model_dump()
    data["surprise"] = 1
    with pytest.raises(pydantic.ValidationError):
        LeakageReport.model_validate(data)
    with pytest.raises(pydantic.ValidationError):
        DPClaim(epsilon=1.0, delta=1e-5, extra=True)


def test_claim_validation():
    assert DPClaim(epsilon=3.0).delta == 1e-5
    for bad in ({"epsilon": 0.0}, {"epsilon": 1.0, "delta": 1.0}, {"epsilon": 1.0, "delta": -1}):
        with pytest.raises(pydantic.ValidationError):
            DPClaim(**bad)


def test_best_epsilon_bound_takes_the_largest_corrected_bound():
    report = _report()
    bounds = report.epsilon_bounds
    assert {(b.source, b.method) for b in bounds} == {
        (source, method)
        for source in ("loss", "confidence")
        for method in ("clopper-pearson", "gdp")
    }
    assert report.epsilon_lower_bound.value == max(b.value for b in bounds)
    assert best_epsilon_bound([]) is None
    rng = np.random.default_rng(1)
    uncorrected = [
        epsilon_lower_bound(rng.normal(size=50), rng.normal(size=50), delta=1e-5),
        epsilon_lower_bound(rng.normal(size=50), rng.normal(size=50), delta=1e-5),
    ]
    with pytest.raises(ValueError, match="n_tests=2"):
        best_epsilon_bound(uncorrected)
