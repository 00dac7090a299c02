"""The validation bench's own code path, small: one correct and one broken DP-SGD digits run.

Each run is trained with Opacus by `bench.dp_validation` (fair-coin membership, 20% wrong
labels) and audited by its `audit_run`, i.e. the worker's attacks and
`attacks.audit_recipe.run_audit_recipe`. A correct model must not be called a violation; a
model trained without DP that claims DP-SGD parameters for a small epsilon must be.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def _run(tmp_path, kind: str, epsilon: float, seed: int = 0) -> dict:
    from bench import dp_validation as bench

    setting = bench.Setting(f"{kind}-{epsilon}", kind, "digits", kind, epsilon, kind != "correct")
    run = bench.train_or_load(setting, seed, tmp_path, factory=lambda: None)
    return bench.audit_run(run)


def test_correct_dp_sgd_run_is_not_a_violation(tmp_path):
    audit = _run(tmp_path, "correct", 1.0)

    assert audit["verdict"] == "consistent"
    assert audit["one_run_bound"] <= audit["claimed_epsilon"]
    assert audit["non_member_accuracy"] > 0.3  # it learns (chance is 0.1)


def test_run_without_dp_claiming_small_epsilon_is_a_violation(tmp_path):
    audit = _run(tmp_path, "no-dp", 0.25)

    assert audit["verdict"] == "violation"
    assert audit["deciding_bound"] is not None
    assert audit["one_run_bound"] > audit["claimed_epsilon"]
    assert audit["member_accuracy"] > 0.95  # it memorised its wrong labels


def test_cached_run_is_reused_with_the_same_outputs(tmp_path):
    from bench import dp_validation as bench

    setting = bench.Setting("no-dp-1", "no-dp", "digits", "no-dp", 1.0, True)
    first = bench.train_or_load(setting, 1, tmp_path, factory=lambda: None)
    again = bench.train_or_load(setting, 1, tmp_path, factory=lambda: None)

    assert (again["logits"] == first["logits"]).all()
    assert (again["member"] == first["member"]).all()
    assert again["seconds"] == first["seconds"]  # loaded, not retrained
