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

import numpy as np

from attacks.data import Record
from attacks.metrics import evaluate_attack
from attacks.report import BlindBaseline

FEATURES = "TF-IDF character n-grams (1-4, char_wb), text length in characters and words, label"
LABEL_FEATURES = "label only (prediction records carry no text)"
# Fewer records per set than this and 5-fold scores say nothing.
MIN_PER_SET = 10
N_FOLDS = 5


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
    columns = [("label", OneHotEncoder(handle_unknown="ignore"), [1])]
    if any(r.text for r in records):
        tfidf = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(1, 4), min_df=2, sublinear_tf=True, max_features=50_000
        )
        length = make_pipeline(FunctionTransformer(_lengths), StandardScaler())
        columns += [("tfidf", tfidf, 0), ("length", length, 0)]
    model = make_pipeline(ColumnTransformer(columns), LogisticRegression(C=1.0, max_iter=2000))
    folds = StratifiedKFold(n_splits=N_FOLDS, shuffle=True, random_state=seed)
    return cross_val_predict(model, table, truth, cv=folds, method="predict_proba")[:, 1]


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
    separable = metrics.auc_ci.low > 0.5
    return BlindBaseline(
        status="separable" if separable else "not-separable",
        auc=metrics.auc,
        auc_ci=metrics.auc_ci,
        n_members=n_members,
        n_non_members=n_non_members,
        features=features,
        note=(
            f"logistic regression, {N_FOLDS}-fold out-of-fold scores; "
            + (
                "the two sets differ without the model"
                if separable
                else "no difference found without the model"
            )
        ),
    )
