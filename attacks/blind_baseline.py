"""A blind baseline: can the records alone, without the model, tell members from non-members?

If a model-free classifier separates the two files, they were not drawn from one
distribution (different sources, dates, cleaning), and any attack on the model partly
measures that difference instead of memorisation (Das, Zhang & Tramer 2024, "Blind Baselines
Beat Membership Inference Attacks for Foundation Models"; Duan et al. 2024). Features: TF-IDF
character n-grams (1-4, within word boundaries) plus length, and the label; a logistic
regression scores every record out of fold (stratified k-fold), so no record is scored by a
classifier that saw it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from attacks.data import Record
from attacks.metrics import evaluate_attack
from attacks.report import BlindBaseline

FEATURES = "TF-IDF character n-grams (1-4, char_wb), text length in characters and words, label"
LABEL_FEATURES = "label only (prediction records carry no text)"
# Fewer records per set than this and 5-fold scores say nothing.
MIN_PER_SET = 10
N_FOLDS = 5
# Out-of-fold scores vary with the fitted folds, which a bootstrap of one score vector does
# not see: on random splits of one pool its interval alone lay above 0.5 in 3 of 20. A
# flagged baseline is therefore confirmed against membership shuffled at random (the whole
# cross-validation rerun N_PERMUTATIONS times): the observed AUC must lie beyond the shuffled
# ones' mean by a Student-t prediction margin at level SEPARABLE_ALPHA. 1%, not 5%: a false
# alarm makes an honest audit inconclusive (and a fail-closed gate fail).
N_PERMUTATIONS = 19
SEPARABLE_ALPHA = 0.01


def _lengths(texts: np.ndarray) -> np.ndarray:
    return np.array([[len(t), len(t.split())] for t in texts], dtype=np.float64)


def blind_scores(records: Sequence[Record], is_member: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Out-of-fold probability that each record is a member, from the records alone."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    truth = np.asarray(is_member, dtype=bool)
    table = np.array(
        [[r.text, "" if r.label is None else str(r.label)] for r in records], dtype=object
    )
    columns: list[tuple[str, Any, Any]] = [("label", OneHotEncoder(handle_unknown="ignore"), [1])]
    if any(r.text for r in records):
        tfidf = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(1, 4), min_df=2, sublinear_tf=True, max_features=50_000
        )
        length = make_pipeline(FunctionTransformer(_lengths), StandardScaler())
        columns += [("tfidf", tfidf, 0), ("length", length, 0)]
    model = make_pipeline(ColumnTransformer(columns), LogisticRegression(C=1.0, max_iter=2000))
    folds = StratifiedKFold(n_splits=N_FOLDS, shuffle=True, random_state=seed)
    return cross_val_predict(model, table, truth, cv=folds, method="predict_proba")[:, 1]


def permutation_p_value(
    records: Sequence[Record], is_member: np.ndarray, observed_auc: float, *, seed: int = 0
) -> float:
    """P-value of the observed AUC when membership is exchangeable with the records.

    The shuffled AUCs give the null's mean and spread; the p-value is the Student-t
    prediction tail of the observed AUC (normal null, N_PERMUTATIONS - 1 degrees of
    freedom), so a 1% level needs 19 reruns instead of 99.
    """
    from scipy.stats import t

    from attacks.metrics import auc

    rng = np.random.default_rng(seed + 1)
    null = []
    for _ in range(N_PERMUTATIONS):
        shuffled = rng.permutation(is_member)
        scores = blind_scores(records, shuffled, seed=seed)
        null.append(auc(scores[shuffled], scores[~shuffled]))
    spread = float(np.std(null, ddof=1)) * np.sqrt(1 + 1 / N_PERMUTATIONS)
    if spread == 0:
        return 0.0 if observed_auc > null[0] else 1.0
    return float(t.sf((observed_auc - float(np.mean(null))) / spread, N_PERMUTATIONS - 1))


def blind_baseline(
    records: Sequence[Record],
    is_member: np.ndarray,
    *,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> BlindBaseline:
    """The blind baseline's AUC with a bootstrap interval; `separable` when the interval
    lies above 0.5."""
    truth = np.asarray(is_member, dtype=bool)
    n_members, n_non_members = int(truth.sum()), int((~truth).sum())
    has_text = any(r.text for r in records)
    has_labels = any(r.label is not None for r in records)
    features = FEATURES if has_text else LABEL_FEATURES
    if min(n_members, n_non_members) < MIN_PER_SET:
        return BlindBaseline(
            status="skipped",
            n_members=n_members,
            n_non_members=n_non_members,
            features=features,
            note=f"fewer than {MIN_PER_SET} records in a set: too few to cross-validate",
        )
    if not has_text and not has_labels:
        return BlindBaseline(
            status="skipped",
            n_members=n_members,
            n_non_members=n_non_members,
            note="the records carry neither text nor labels: nothing to look at without the model",
        )
    scores = blind_scores(records, truth, seed=seed)
    metrics = evaluate_attack(
        "blind-baseline",
        scores[truth],
        scores[~truth],
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        seed=seed,
    )
    p_value = None
    if metrics.auc_ci.low > 0.5:
        p_value = permutation_p_value(records, truth, metrics.auc, seed=seed)
    separable = p_value is not None and p_value <= SEPARABLE_ALPHA
    return BlindBaseline(
        status="separable" if separable else "not-separable",
        auc=metrics.auc,
        auc_ci=metrics.auc_ci,
        n_members=n_members,
        n_non_members=n_non_members,
        features=features,
        p_value=p_value,
        note=(
            f"logistic regression, {N_FOLDS}-fold out-of-fold scores"
            + (
                f", {N_PERMUTATIONS} shuffles of membership, p = {p_value:.2g}; "
                if p_value is not None
                else "; "
            )
            + (
                "the two sets differ without the model"
                if separable
                else "no difference found without the model"
            )
        ),
    )
