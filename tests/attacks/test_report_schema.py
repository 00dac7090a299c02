"""Tests for the versioned leakage-report schema, built from real attack outputs."""

from datetime import UTC, datetime

import numpy as np
import pydantic
import pytest

from attacks.audit_recipe import run_audit_recipe
from attacks.data import Record
from attacks.privacy import epsilon_lower_bound
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
    members = np.arange(800) < 400
    scores = {
        "loss": rng.normal(0, 1, 800) + 1.0 * members,
        "confidence": rng.normal(0, 1, 800) + 0.5 * members,
    }
    words = [
        "book",
        "a",
        "flight",
        "cancel",
        "my",
        "order",
        "play",
        "music",
        "set",
        "an",
        "alarm",
        "for",
        "seven",
    ]
    records = [
        Record(text=" ".join(rng.choice(words, 8)), label=int(rng.integers(3)), id=str(i))
        for i in range(800)
    ]
    claim = DPClaim(epsilon=8.0)
    outcome = run_audit_recipe(scores, members, records, claim, n_bootstrap=50)
    return outcome.report(
        target=TargetInfo(task="text-classification", model_type="bert", num_labels=2),
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
    assert report.schema_version == REPORT_SCHEMA_VERSION == 3
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
        (source, "one-run") for source in ("loss", "confidence")
    }
    assert {(b.source, b.method) for b in report.epsilon_estimates} == {
        (source, "clopper-pearson") for source in ("loss", "confidence")
    }
    assert report.data_checks is not None and report.data_checks.n_members == 400
    assert report.blind_baseline is not None and report.blind_baseline.status == "not-separable"
    assert report.epsilon_lower_bound.value == max(b.value for b in bounds)
    assert best_epsilon_bound([]) is None
    rng = np.random.default_rng(1)
    uncorrected = [
        epsilon_lower_bound(rng.normal(size=50), rng.normal(size=50), delta=1e-5),
        epsilon_lower_bound(rng.normal(size=50), rng.normal(size=50), delta=1e-5),
    ]
    with pytest.raises(ValueError, match="n_tests=2"):
        best_epsilon_bound(uncorrected)
