"""Data checks and the blind baseline: what they find on small, known record sets."""

from __future__ import annotations

import numpy as np
import pytest

from attacks.blind_baseline import blind_baseline
from attacks.data import Record
from attacks.data_checks import check_records, normalise


def test_normalisation_joins_copies_that_differ_in_case_spacing_and_unicode_form():
    assert normalise("Caf\u00e9  Au\tLait ") == normalise("CAFE\u0301 au lait")


def test_duplicates_and_overlaps_are_counted_and_removed():
    members = [
        Record(text="hello world", label=1, id="m0"),
        Record(text="Hello   World", label=1, id="m1"),  # duplicate of m0
        Record(text="hello world", label=2, id="m2"),  # same text, other label: kept
        Record(text="shared text", label=0, id="m3"),  # also a non-member
        Record(text="only member", label=0, id="m4"),
    ]
    non_members = [
        Record(text="SHARED text", label=1, id="n0"),
        Record(text="fresh", label=0, id="n1"),
        Record(text="fresh", label=0, id="n2"),
    ]
    records = members + non_members
    is_member = np.arange(len(records)) < len(members)
    clean = check_records(records, is_member)
    section = clean.section
    assert section.duplicate_members.count == 1 and section.duplicate_members.example_ids == ["m1"]
    assert section.duplicate_non_members.count == 1
    assert section.in_both.count == 1 and section.in_both.example_ids == ["m3"]
    kept_ids = [records[i].id for i in clean.keep]
    assert kept_ids == ["m0", "m2", "m4", "n1"]
    assert (section.n_members, section.n_non_members) == (3, 1)
    # Records copied within their file are not one-run candidates.
    assert [records[i].id for i in clean.once] == ["m2", "m4"]
    assert clean.max_member_copies == 2


def test_prediction_records_are_checked_by_id():
    records = [
        Record(text="", label=0, id="a", outputs=(0.5, 0.5), outputs_kind="probs"),
        Record(text="", label=0, id="a", outputs=(0.5, 0.5), outputs_kind="probs"),
        Record(text="", label=0, id="b", outputs=(0.5, 0.5), outputs_kind="probs"),
    ]
    clean = check_records(records, np.array([True, True, False]))
    assert clean.section.duplicate_members.count == 1 and clean.section.in_both.count == 0


@pytest.mark.slow  # fits scikit-learn models over many shuffles
def test_blind_baseline_tells_different_sources_apart_and_not_one_source():
    rng = np.random.default_rng(0)
    words = ["set", "an", "alarm", "play", "music", "book", "a", "table", "for", "two"]

    def text() -> str:
        return " ".join(rng.choice(words, 7))

    same = [Record(text=text(), label=int(rng.integers(3)), id=str(i)) for i in range(400)]
    is_member = np.arange(400) < 200
    assert blind_baseline(same, is_member, n_bootstrap=200).status == "not-separable"
    shifted = same[:200] + [
        Record(text=text().upper() + " ??", label=r.label, id=r.id) for r in same[200:]
    ]
    result = blind_baseline(shifted, is_member, n_bootstrap=200)
    assert result.status == "separable" and result.auc_ci.low > 0.5


def test_blind_baseline_skips_sets_too_small_to_cross_validate():
    records = [Record(text=f"t{i}", label=0, id=str(i)) for i in range(12)]
    result = blind_baseline(records, np.arange(12) < 6)
    assert result.status == "skipped" and "too few" in result.note
