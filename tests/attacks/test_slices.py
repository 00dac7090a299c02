"""Score histograms and sliced metrics: counts add up, the leaky class is the one found."""

from datetime import UTC, datetime

import numpy as np
import pytest

from attacks.audit_recipe import run_audit_recipe
from attacks.data import Record
from attacks.report import LeakageReport, TargetInfo
from attacks.slices import MIN_SLICE_RECORDS, score_histogram, slice_metrics


def _classes(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 3, n)


def test_histogram_counts_every_score_once_in_fixed_bins():
    rng = np.random.default_rng(1)
    members, non_members = rng.normal(1, 1, 300), rng.normal(0, 1, 500)
    members[0] = 1e6  # an outlier lands in the last bin instead of flattening the rest
    hist = score_histogram("loss", members, non_members, n_bins=20)
    assert len(hist.edges) == 21 and len(hist.members) == len(hist.non_members) == 20
    assert sum(hist.members) == 300 and sum(hist.non_members) == 500
    assert hist.clipped and hist.edges[-1] < 1e3
    assert hist.members[-1] >= 1
    # Members score higher: their mass sits further right than the non-members'.
    centres = (np.array(hist.edges[:-1]) + np.array(hist.edges[1:])) / 2
    assert np.average(centres, weights=hist.members) > np.average(centres, weights=hist.non_members)


def test_histogram_of_constant_scores_is_one_filled_range():
    hist = score_histogram("loss", np.zeros(5), np.zeros(7), n_bins=4)
    assert sum(hist.members) == 5 and sum(hist.non_members) == 7
    assert hist.edges[0] < 0 < hist.edges[-1]


def test_the_leaky_class_is_the_most_vulnerable():
    rng = np.random.default_rng(2)
    n = 1800
    is_member = rng.random(n) < 0.5
    labels = _classes(n, rng)
    # Only class 2's members stand out; classes 0 and 1 are guessing.
    scores = rng.normal(0, 1, n) + 2.0 * (is_member & (labels == 2))
    slices = slice_metrics({"loss": scores}, is_member, labels=labels.tolist())
    assert slices is not None
    assert slices.most_vulnerable_class == "2" and slices.most_vulnerable_attack == "loss"
    by_class = {r.value: r for r in slices.results if r.feature == "class"}
    assert set(by_class) == {"0", "1", "2"}
    assert by_class["2"].auc is not None and by_class["2"].auc > 0.85
    assert by_class["0"].auc is not None and abs(by_class["0"].auc - 0.5) < 0.1
    ci = by_class["0"].auc_ci
    assert ci is not None and ci.low < 0.5 < ci.high
    assert by_class["2"].tpr_resolved and by_class["2"].tpr_at_1pct_fpr is not None
    assert sum(r.n_members for r in by_class.values()) == int(is_member.sum())


def test_incorrect_predictions_slice_separately():
    rng = np.random.default_rng(3)
    n = 1000
    is_member = rng.random(n) < 0.5
    correct = rng.random(n) < 0.7
    scores = rng.normal(0, 1, n) + 1.5 * (is_member & ~correct)
    slices = slice_metrics(
        {"loss": scores, "flat": rng.normal(0, 1, n)}, is_member, correct=correct
    )
    assert slices is not None and slices.most_vulnerable_class is None
    results = {(r.value, r.attack): r for r in slices.results}
    assert set(results) == {(v, a) for v in ("correct", "incorrect") for a in ("loss", "flat")}
    assert results[("incorrect", "loss")].auc > results[("correct", "loss")].auc + 0.2


def test_small_slices_are_counted_without_metrics():
    rng = np.random.default_rng(4)
    is_member = np.arange(100) < 50
    labels = [0] * 95 + [1] * 5
    slices = slice_metrics({"loss": rng.normal(0, 1, 100)}, is_member, labels=labels)
    assert slices is not None
    small = next(r for r in slices.results if r.value == "1")
    assert small.n_members + small.n_non_members == 5 < MIN_SLICE_RECORDS
    assert small.auc is None and small.tpr_at_1pct_fpr is None
    assert slice_metrics({"loss": np.zeros(4)}, np.array([1, 0, 1, 0], bool)) is None


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="labels"):
        slice_metrics({"loss": np.zeros(4)}, np.zeros(4, bool), labels=[1, 2])


def test_recipe_reports_histograms_and_slices_on_unique_records():
    rng = np.random.default_rng(5)
    n = 600
    is_member = np.arange(n) < 300
    labels = _classes(n, rng)
    correct = rng.random(n) < 0.8
    records = [Record(text=f"record {i}", label=int(labels[i]), id=str(i)) for i in range(n)]
    records[1] = Record(text="record 0", label=int(labels[0]), id="1")  # a duplicate member
    scores = {"loss": rng.normal(0, 1, n) + is_member, "confidence": rng.normal(0, 1, n)}
    outcome = run_audit_recipe(
        scores, is_member, records, None, n_bootstrap=20, blind=False, correct=correct
    )
    report = outcome.report(
        target=TargetInfo(task="text-classification"),
        dp_claim=None,
        utility=None,
        device="cpu",
        timings={},
        library_versions={},
        created_at=datetime.now(UTC),
    )
    assert [h.attack for h in report.score_histograms] == ["loss", "confidence"]
    kept_members = report.attacks[0].n_members
    assert kept_members < 300  # the duplicate is gone from histograms as from metrics
    assert all(sum(h.members) == kept_members for h in report.score_histograms)
    assert report.slices is not None
    correctness = [r for r in report.slices.results if r.feature == "correctness"]
    assert len(correctness) == 4
    assert LeakageReport.model_validate_json(report.model_dump_json()) == report


def test_a_stored_report_without_the_new_fields_still_reads():
    rng = np.random.default_rng(6)
    is_member = np.arange(200) < 100
    outcome = run_audit_recipe(
        {"loss": rng.normal(0, 1, 200)}, is_member, None, None, n_bootstrap=10
    )
    report = outcome.report(
        target=TargetInfo(task="predictions"),
        dp_claim=None,
        utility=None,
        device="cpu",
        timings={},
        library_versions={},
        created_at=datetime.now(UTC),
    )
    assert report.slices is None  # no records, no correctness: nothing to slice by
    body = report.model_dump(mode="json")
    del body["score_histograms"], body["slices"]
    old = LeakageReport.model_validate(body)
    assert old.score_histograms == [] and old.slices is None
