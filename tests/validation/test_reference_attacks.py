"""Validation of LiRA and RMIA on real small models: scikit-learn's digits and a tiny BERT."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score
from torch import nn

from attacks.metrics import auc, evaluate_attack
from attacks.mia import AttackInputs, get_attack
from attacks.reference import (
    TrainConfig,
    inclusion_masks,
    train_reference_mlps,
    train_reference_text_classifiers,
)
from attacks.signals import classifier_signals

pytestmark = pytest.mark.slow

ATTACKS = ("loss", "lira", "lira-global", "lira-offline", "lira-offline-global", "rmia")
ATTACKS += ("rmia-offline",)
REFERENCE_COUNTS = (1, 2, 4, 8)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models train fastest, and reproducibly, on one thread of a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclasses.dataclass
class Audit:
    """Signals of one target and its 8 reference models, with the scores of every attack.

    Standard LiRA design: the references come in complementary pairs, each trained on a random
    half of ALL records, so every audited record is IN for exactly half of them (online); the
    offline attacks read only the OUT models. K = 1, 2, 4 use the first K models (even prefixes
    stay balanced). RMIA's population z are the audited records themselves, with their own
    IN/OUT masks: for gamma = 1 its score is a rank of LR(x), which z only resolves.
    """

    member: np.ndarray
    target: dict[str, np.ndarray]
    per_model: list[dict[str, np.ndarray]]
    masks: np.ndarray
    training_seconds: float

    def inputs(self, k: int) -> AttackInputs:
        references = {
            name: np.stack([signals[name] for signals in self.per_model[:k]])
            for name in ("confidence", "probability")
        }
        return AttackInputs(
            target=self.target,
            references=references,
            reference_in=self.masks[:k],
            population_target=self.target,
            population_references=references,
            population_reference_in=self.masks[:k],
        )

    def scores(self, name: str, k: int) -> np.ndarray:
        return get_attack(name).score(self.inputs(k))

    def tpr_at_1_percent(self, name: str, k: int) -> float:
        scores = self.scores(name, k)
        metrics = evaluate_attack(
            name, scores[self.member], scores[~self.member], fprs=(0.01,), n_bootstrap=1
        )
        return metrics.tpr_at_fpr[0].tpr

    def table(self, title: str) -> str:
        """TPR at 1% FPR [95% bootstrap interval] and AUC of every attack at every K."""
        lines = [
            title,
            f"  {self.member.sum()} members, {(~self.member).sum()} non-members; "
            f"8 reference models trained in {self.training_seconds:.1f} s",
            f"  {'attack':<21}" + "".join(f"{f'K = {k}':>26}" for k in REFERENCE_COUNTS),
        ]
        for name in ATTACKS:
            cells = []
            for k in REFERENCE_COUNTS:
                scores = self.scores(name, k)
                metrics = evaluate_attack(
                    name, scores[self.member], scores[~self.member], fprs=(0.01,), n_bootstrap=200
                )
                point = metrics.tpr_at_fpr[0]
                cells.append(
                    f"{point.tpr:.3f} [{point.ci_low:.3f},{point.ci_high:.3f}] {metrics.auc:.3f}"
                )
            lines.append(f"  {name:<21}" + "".join(f"{cell:>26}" for cell in cells))
        lines.append("  cells: TPR at 1% FPR [95% bootstrap CI] AUC")
        return "\n".join(lines)


def _check_loss_auc_matches_sklearn(audit: Audit) -> None:
    scores = audit.scores("loss", 8)
    np.testing.assert_array_equal(scores, -audit.target["loss"])
    expected = roc_auc_score(audit.member, scores)
    assert auc(scores[audit.member], scores[~audit.member]) == pytest.approx(expected, abs=1e-12)
    metrics = evaluate_attack("loss", scores[audit.member], scores[~audit.member], n_bootstrap=10)
    assert metrics.auc == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Digits: a 64-256-10 MLP trained to overfit a random half (members) of the 1797 images.


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))


@pytest.fixture(scope="module")
def digits() -> Audit:
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    n = len(x)
    member = np.random.default_rng(0).permutation(n) < n // 2
    config = TrainConfig(epochs=100, lr=1e-3, batch_size=32, seed=0)
    # The target is trained exactly as the references are, on the members only.
    target = train_reference_mlps(
        _mlp, x, y, member[None], dataclasses.replace(config, seed=1000), device="cpu"
    )
    masks = inclusion_masks(n, 8, seed=1)
    references = train_reference_mlps(_mlp, x, y, masks, config, device="cpu")
    assert references.trained_together
    target_signals = classifier_signals(target.logits(x)[0], y)
    assert target_signals["correct"][member].mean() == 1.0  # overfit: every member is fitted
    return Audit(
        member=member,
        target=target_signals,
        per_model=[classifier_signals(logits, y) for logits in references.logits(x)],
        masks=masks,
        training_seconds=references.training_seconds,
    )


def test_digits_table_and_loss_auc(digits: Audit) -> None:
    print("\n" + digits.table("digits, MLP 64-256-10, 100 epochs"))
    _check_loss_auc_matches_sklearn(digits)


def test_digits_lira_and_rmia_beat_loss_with_8_references(digits: Audit) -> None:
    loss = digits.tpr_at_1_percent("loss", 8)
    for name in ("lira", "lira-global", "rmia"):
        assert digits.tpr_at_1_percent(name, 8) > loss, name


# ---------------------------------------------------------------------------------------------
# Text: the bundled intent classifier (tiny BERT, 20% wrong labels to memorise), members a
# random half of 800 utterances; references are its architecture retrained from its config.

N_TEXTS = 800
TEXT_EPOCHS = 30


@pytest.fixture(scope="module")
def intents(tmp_path_factory: pytest.TempPathFactory) -> Audit:
    from attacks.targets import TextClassifier
    from demo.intent import (
        EXAMPLE_LABEL_NOISE,
        MAX_LENGTH,
        make_intent_records,
        train_intent_classifier,
    )

    pool = make_intent_records(N_TEXTS, seed=0, label_noise=EXAMPLE_LABEL_NOISE)
    random.Random(0).shuffle(pool)
    texts = [record["text"] for record in pool]
    member = np.arange(N_TEXTS) < N_TEXTS // 2
    target_dir = Path(tmp_path_factory.mktemp("intent-target"))
    train_intent_classifier(
        target_dir,
        [record for record, is_member in zip(pool, member, strict=True) if is_member],
        epochs=TEXT_EPOCHS,
        seed=1000,
        vocab_texts=texts,
    )
    classifier = TextClassifier.load(target_dir, device="cpu")
    labels = classifier.label_ids([record["label"] for record in pool])
    target_signals = classifier_signals(classifier.logits(texts, max_length=MAX_LENGTH), labels)

    masks = inclusion_masks(N_TEXTS, 8, seed=1)
    # The hyperparameters train_intent_classifier used for the target.
    config = TrainConfig(epochs=TEXT_EPOCHS, lr=1e-3, batch_size=32, seed=0, max_length=MAX_LENGTH)
    references = train_reference_text_classifiers(
        target_dir, texts, labels, masks, config, together=True, device="cpu"
    )
    assert references.trained_together, references.note
    logits = references.logits(texts, max_length=MAX_LENGTH)
    return Audit(
        member=member,
        target=target_signals,
        per_model=[classifier_signals(model_logits, labels) for model_logits in logits],
        masks=masks,
        training_seconds=references.training_seconds,
    )


def test_intent_table_and_loss_auc(intents: Audit) -> None:
    print("\n" + intents.table(f"intent BERT (hidden 64, 2 layers), {TEXT_EPOCHS} epochs"))
    _check_loss_auc_matches_sklearn(intents)


def test_intent_rmia_and_fixed_variance_lira_beat_loss_with_8_references(intents: Audit) -> None:
    loss = intents.tpr_at_1_percent("loss", 8)
    for name in ("lira-global", "rmia"):
        assert intents.tpr_at_1_percent(name, 8) > loss, name


@pytest.mark.xfail(
    strict=True,
    reason=(
        "Does not hold on this tiny BERT, and the test is not tuned until it does: with 8 "
        "references each record has 4 IN and 4 OUT values, so its two variances are noisy "
        "(3 degrees of freedom each). A non-member whose target confidence lies far from both "
        "fits then gets a huge log-ratio whenever its OUT fit happens to be the narrower one "
        "(confidence -1.9 against IN 3.4 +- 0.6 and OUT 4.0 +- 0.2 scores 423), and such records "
        "fill the top of the ranking. LiRA's authors use a fixed variance below about 64 "
        "models; lira-global beats loss here (asserted above)."
    ),
)
def test_intent_per_record_variance_lira_beats_loss_with_8_references(intents: Audit) -> None:
    assert intents.tpr_at_1_percent("lira", 8) > intents.tpr_at_1_percent("loss", 8)
