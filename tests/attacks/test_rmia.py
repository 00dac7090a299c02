"""Tests for RMIA against a brute-force reading of its definition and on synthetic signals."""

import numpy as np
import pytest
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from attacks.mia import RMIA, AttackInputs, get_attack
from attacks.reference import inclusion_masks


def _brute_force(inputs: AttackInputs, online: bool, a: float, gamma: float) -> np.ndarray:
    """Score(x) = mean over z of 1[LR(x) / LR(z) > gamma], one pair at a time."""

    def marginal(references, reference_in, i):
        column = references[:, i]
        if online:
            return column.mean()
        out = column[~reference_in[:, i]] if reference_in is not None else column
        return 0.5 * (1 + a) * out.mean() + 0.5 * (1 - a)

    p_x = inputs.target["probability"]
    p_z = inputs.population_target["probability"]
    ratio_x = [
        p_x[i] / marginal(inputs.references["probability"], inputs.reference_in, i)
        for i in range(p_x.size)
    ]
    ratio_z = [
        p_z[j]
        / marginal(inputs.population_references["probability"], inputs.population_reference_in, j)
        for j in range(p_z.size)
    ]
    return np.array([np.mean([rx / rz > gamma for rz in ratio_z]) for rx in ratio_x])


def _random_inputs(seed: int, n: int = 40, m: int = 30, k: int = 4) -> AttackInputs:
    rng = np.random.default_rng(seed)
    return AttackInputs(
        target={"probability": rng.uniform(0.01, 1, n)},
        references={"probability": rng.uniform(0.01, 1, (k, n))},
        reference_in=inclusion_masks(n, k, seed=seed),
        population_target={"probability": rng.uniform(0.01, 1, m)},
        population_references={"probability": rng.uniform(0.01, 1, (k, m))},
        population_reference_in=inclusion_masks(m, k, seed=seed + 1),
    )


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize("a", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0])
def test_scores_match_the_definition(online, a, gamma):
    inputs = _random_inputs(seed=int(10 * a + 3 * gamma))
    scores = RMIA(online=online, a=a, gamma=gamma).score(inputs)
    np.testing.assert_allclose(scores, _brute_force(inputs, online, a, gamma))
    assert np.all((scores >= 0) & (scores <= 1))


def test_offline_a_corrects_the_out_mean_linearly():
    # One record and one z; OUT mean 0.2 for x. a = 1 keeps it; a = 0 moves halfway to 1.
    inputs = AttackInputs(
        target={"probability": np.array([0.5])},
        references={"probability": np.array([[0.9], [0.1], [0.3]])},
        reference_in=np.array([[True], [False], [False]]),
    )
    for a, expected in [(1.0, 0.2), (0.0, 0.6), (0.3, 0.65 * 0.2 + 0.35)]:
        ratio = RMIA(online=False, a=a).log_ratio(
            inputs.target["probability"], inputs.references["probability"], inputs.reference_in
        )
        assert ratio[0] == pytest.approx(np.log(0.5 / expected))
    online = RMIA(online=True).log_ratio(
        inputs.target["probability"], inputs.references["probability"], inputs.reference_in
    )
    assert online[0] == pytest.approx(np.log(0.5 / np.mean([0.9, 0.1, 0.3])))


def test_ties_do_not_count_and_scores_are_ranks():
    # z = the audited records themselves: LR(x) / LR(x) = 1 is not > 1, so the record with the
    # largest ratio beats every other record but not itself.
    p = np.array([0.2, 0.4, 0.4, 0.9])
    references = np.full((2, 4), 0.5)
    reference_in = np.array([[True, False, True, False], [False, True, False, True]])
    inputs = AttackInputs(
        target={"probability": p},
        references={"probability": references},
        reference_in=reference_in,
        population_target={"probability": p},
        population_references={"probability": references},
        population_reference_in=reference_in,
    )
    np.testing.assert_allclose(RMIA(online=True).score(inputs), [0, 0.25, 0.25, 0.75])


def test_a_larger_gamma_never_raises_a_score():
    inputs = _random_inputs(seed=5)
    low = RMIA(gamma=1.0).score(inputs)
    high = RMIA(gamma=3.0).score(inputs)
    assert np.all(high <= low)


def test_extreme_probabilities_stay_finite():
    inputs = AttackInputs(
        target={"probability": np.array([0.0, 1.0, 1e-300])},
        references={"probability": np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 1e-310]])},
        reference_in=np.array([[True, False, True], [False, True, False]]),
        population_target={"probability": np.array([0.0, 0.5])},
        population_references={"probability": np.zeros((2, 2))},
    )
    for online in (True, False):
        scores = RMIA(online=online).score(inputs)
        assert np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 1))


def _world(seed: int, n: int = 2000, m: int = 1000, k: int = 8):
    """Record difficulty d_i spreads the probability; training on a record adds 2 to its logit."""
    rng = np.random.default_rng(seed)

    def draw(count: int, member: np.ndarray, reference_in: np.ndarray):
        difficulty = rng.normal(0, 2.5, count)
        target = expit(difficulty + 2 * member + rng.normal(0, 0.7, count))
        references = expit(difficulty + 2 * reference_in + rng.normal(0, 0.7, (k, count)))
        return target, references

    member = rng.random(n) < 0.5
    reference_in = inclusion_masks(n, k, seed=seed)
    target, references = draw(n, member, reference_in)
    z_in = inclusion_masks(m, k, seed=seed + 1)
    z_target, z_references = draw(m, np.zeros(m, dtype=bool), z_in)
    inputs = AttackInputs(
        target={"probability": target},
        references={"probability": references},
        reference_in=reference_in,
        population_target={"probability": z_target},
        population_references={"probability": z_references},
        population_reference_in=z_in,
    )
    return inputs, member


@pytest.mark.parametrize("name", ["rmia", "rmia-offline"])
def test_rmia_beats_the_raw_probability_when_records_differ_in_difficulty(name):
    inputs, member = _world(0)
    scores = get_attack(name).score(inputs)
    raw = roc_auc_score(member, inputs.target["probability"])
    # The raw signal mixes difficulty into membership: Phi(2 / sqrt(2 (2.5^2 + 0.7^2))) = 0.71.
    assert raw < 0.75
    assert roc_auc_score(member, scores) > raw + 0.1


def test_needs_references_and_population():
    inputs, _ = _world(1, n=100, m=50)
    with pytest.raises(ValueError, match="population"):
        RMIA().score(
            AttackInputs(
                target=inputs.target,
                references=inputs.references,
                reference_in=inputs.reference_in,
            )
        )
    with pytest.raises(ValueError, match="reference models"):
        RMIA().score(AttackInputs(target=inputs.target))
    offline_design = AttackInputs(
        target=inputs.target,
        references=inputs.references,
        population_target=inputs.population_target,
        population_references=inputs.population_references,
    )
    with pytest.raises(ValueError, match="offline RMIA"):
        RMIA(online=True).score(offline_design)
    assert RMIA(online=False).score(offline_design).shape == (100,)
    with pytest.raises(ValueError):
        RMIA(a=1.5)
    with pytest.raises(ValueError):
        RMIA(gamma=0.0)
    assert RMIA().needs_references and RMIA().name == "rmia"
    assert RMIA(online=False).name == "rmia-offline"
