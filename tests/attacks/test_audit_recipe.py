"""The audit recipe on exact DP mechanisms: no false accusations, and real leaks still found.

Each construction would have been a `violation` under the old rule (Clopper-Pearson and
Gaussian-DP bounds over the records of one run deciding); the old statistics are still in
the report as estimates, so each test also shows the trap it avoids.
"""

from __future__ import annotations

import numpy as np
import pytest

from attacks.audit_recipe import run_audit_recipe
from attacks.data import Record
from attacks.privacy.empirical import epsilon_from_mu, family_bounds
from attacks.report import DPClaim
from tests.test_verdict_bounds import dp_sgd_claim

WORDS = [
    "book",
    "a",
    "flight",
    "to",
    "paris",
    "cancel",
    "my",
    "order",
    "what",
    "is",
    "the",
    "weather",
    "play",
    "some",
    "music",
    "set",
    "an",
    "alarm",
    "for",
    "seven",
    "tomorrow",
    "morning",
    "please",
]


def _text(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, 10)) + f" #{rng.integers(10**9)}"


def _gaussian_with_duplicates(seed: int, *, n: int, mu: float, share: float):
    """An exact mu-GDP release per occurrence: a member's score is N(copies * mu, 1).

    A `share` of the members occur twice in training and twice in the members file (same
    text, same score): they are protected only as groups of two.
    """
    rng = np.random.default_rng(seed)
    copies = np.where(rng.random(n) < share, 2, 1)
    member_scores = copies * mu + rng.normal(0, 1, n)
    records, scores, is_member = [], [], []
    for i in range(n):
        text = _text(rng)
        for _ in range(copies[i]):
            records.append(Record(text=text, label=int(i % 3), id=f"m{i}"))
            scores.append(member_scores[i])
            is_member.append(True)
    for i in range(n):
        records.append(Record(text=_text(rng), label=int(i % 3), id=f"n{i}"))
        scores.append(rng.normal(0, 1))
        is_member.append(False)
    return records, np.array(scores), np.array(is_member)


# Seeds on which the old rule accused (it did on 5 of the first 8 at these settings).
@pytest.mark.parametrize("seed", [0, 3])
def test_duplicated_members_do_not_turn_an_exact_dp_mechanism_into_a_violation(seed):
    mu = 1.5
    claim = dp_sgd_claim(epsilon_from_mu(mu, 1e-5))
    records, scores, is_member = _gaussian_with_duplicates(seed, n=2000, mu=mu, share=0.12)
    outcome = run_audit_recipe({"loss": scores}, is_member, records, claim, n_bootstrap=100)
    checks = outcome.data_checks
    assert checks is not None and checks.duplicate_members.count > 150
    assert checks.n_members == 2000 and checks.n_single_copy < 4000
    # The old rule (Gaussian-DP over every record given, deciding) accuses the correct claim ...
    old = family_bounds(
        {"loss": (scores[is_member], scores[~is_member])}, delta=1e-5, gaussian=True
    )
    assert max(b.value for b in old) > claim.claimed_epsilon
    # ... the one-run statistics over records occurring once do not.
    assert outcome.verdict.status == "consistent"
    assert {b.method for b in outcome.bounds} == {"one-run", "fdp-one-run"}


@pytest.mark.slow  # fits scikit-learn models over many shuffles
def test_members_and_non_members_from_different_distributions_are_inconclusive():
    """Clean members, noisy non-members, scored by a model trained on neither: the score
    follows the text's cleanliness, not membership."""
    rng = np.random.default_rng(0)
    clean = [_text(rng) for _ in range(600)]
    noisy = [_text(rng).upper().replace(" ", "  ") + " !!" for _ in range(600)]
    records = [Record(text=t, label=i % 4, id=f"m{i}") for i, t in enumerate(clean)] + [
        Record(text=t, label=i % 4, id=f"n{i}") for i, t in enumerate(noisy)
    ]
    is_member = np.arange(1200) < 600
    scores = np.where(is_member, 1.0, 0.0) + rng.normal(0, 0.8, 1200)
    outcome = run_audit_recipe(
        {"loss": scores}, is_member, records, DPClaim(epsilon=1.0), n_bootstrap=200
    )
    assert max(e.value for e in outcome.estimates) > 1.0  # the old rule: violation
    assert outcome.blind_baseline is not None and outcome.blind_baseline.status == "separable"
    assert outcome.verdict.status == "inconclusive"
    assert outcome.bounds == []
    assert "without the model" in outcome.verdict.explanation


def _randomized_response(rng: np.random.Generator, is_member: np.ndarray, epsilon: float):
    """Reports membership truthfully with probability e^eps / (1 + e^eps): exactly eps-DP."""
    truthful = rng.random(is_member.size) < 1 / (1 + np.exp(-epsilon))
    return np.where(truthful, is_member, ~is_member).astype(np.float64)


N_SEEDS = 60


def test_exact_mechanisms_at_the_claimed_epsilon_are_not_accused():
    """Soundness: over many seeds, at most the stated 5% (in practice none) are violations."""
    violations = 0
    for seed in range(N_SEEDS):
        rng = np.random.default_rng(seed)
        is_member = rng.random(1000) < 0.5
        mu = 1.0
        gaussian = np.where(is_member, mu, 0.0) + rng.normal(0, 1, 1000)
        rr = _randomized_response(rng, is_member, 2.0)
        for scores, claim in (
            ({"gaussian": gaussian}, dp_sgd_claim(epsilon_from_mu(mu, 1e-5))),
            ({"rr": rr}, DPClaim(epsilon=2.0)),
        ):
            outcome = run_audit_recipe(
                scores, is_member, None, claim, membership_source="service", n_bootstrap=20
            )
            violations += outcome.verdict.status == "violation"
    # Binomial(120, 0.05) exceeds 14 with probability below 1%.
    assert violations <= 14


def test_non_private_mechanisms_are_flagged():
    """Power: the same mechanisms far above their claim are violations in every seed."""
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        is_member = rng.random(1000) < 0.5
        gaussian = np.where(is_member, 4.0, 0.0) + rng.normal(0, 1, 1000)
        rr = _randomized_response(rng, is_member, 6.0)
        for scores, claim in (
            ({"gaussian": gaussian}, dp_sgd_claim(1.0)),
            ({"rr": rr}, DPClaim(epsilon=1.0)),
        ):
            outcome = run_audit_recipe(
                scores, is_member, None, claim, membership_source="service", n_bootstrap=20
            )
            assert outcome.verdict.status == "violation", (seed, list(scores))
            assert "leakgate drew by a fair coin" in outcome.verdict.explanation
