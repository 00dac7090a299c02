"""Measure a canary set on the audited model: every canary, inserted and held out alike.

Secret canaries get exposure and an extraction attempt, and the one-run bound ranks them by
exposure. Audit canaries (many, inserted once) get one score each, the model's log-likelihood
of the canary as written (its label for a classifier), which is what the one-run bound ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attacks.canaries.exposure import DEFAULT_BUDGET, DEFAULT_SAMPLES, measure_exposure
from attacks.canaries.extraction import decode_causal_lm, invert_classifier
from attacks.canaries.generation import Canary, CanaryKind, Template
from attacks.canaries.model import CanaryModel, ModelKind, tokenize_canaries
from attacks.privacy.one_run import one_run_epsilon_lower_bound
from attacks.report import CanaryReport, CanaryResult, CanarySummary, OneRunEpsilon

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class CanaryOptions:
    exposure_budget: int = DEFAULT_BUDGET
    exposure_samples: int = DEFAULT_SAMPLES
    inversion_steps: int = 200
    inversion_lr: float = 0.1
    beam: int = 0
    batch_size: int = 1024
    confidence: float = 0.95
    delta: float = 1e-5
    seed: int = 0


def measure_canaries(
    model: Any,
    tokenizer: Any,
    task: ModelKind,
    *,
    canary_set: str,
    kind: CanaryKind,
    canaries: Sequence[Canary],
    template: Template | None,
    label_ids: Sequence[int] | None = None,
    options: CanaryOptions = CanaryOptions(),
    reveal: bool = False,
    device: str = "cpu",
    progress: Progress | None = None,
) -> CanaryReport:
    """The canary section of the report. `label_ids` are the model's class indices of the
    canaries' labels (classifiers); `reveal` puts secrets and recovered secrets in it."""
    canaries = list(canaries)
    if task == "token-classification":
        raise ValueError(
            "token classifiers: tag the canaries with model.with_slot_tags and call "
            "measure_exposure and invert_classifier directly (the service has no such task yet)"
        )
    if task == "text-classification" and label_ids is None:
        raise ValueError("a classifier's canaries need label ids")
    report = (lambda done, stage: progress(done, stage)) if progress else (lambda *_: None)
    target = CanaryModel(model, task, device)
    inserted = np.array([c.inserted for c in canaries], dtype=bool)
    summary: dict[str, Any] = {
        "canary_set": canary_set,
        "kind": kind,
        "template": template.text if template else None,
        "n_inserted": int(inserted.sum()),
        "n_held_out": int((~inserted).sum()),
    }
    if kind == "secret" and template is not None:
        results, score_name = _secret_canaries(
            target, tokenizer, template, canaries, label_ids, options, reveal, report
        )
        exposures = np.array([r.exposure for r in results], dtype=np.float64)
        extracted = np.array([bool(r.extracted) for r in results])
        accuracy = np.array([r.per_position_accuracy for r in results], dtype=np.float64)
        summary |= {
            "mean_exposure_inserted": _mean(exposures[inserted]),
            "mean_exposure_held_out": _mean(exposures[~inserted]),
            "n_extracted_inserted": int(extracted[inserted].sum()),
            "n_extracted_held_out": int(extracted[~inserted].sum()),
            "mean_position_accuracy_inserted": _mean(accuracy[inserted]),
            "mean_position_accuracy_held_out": _mean(accuracy[~inserted]),
            "chance_position_accuracy": 1 / len(template.alphabet),
            "extraction_method": (
                "inversion" if task == "text-classification" else f"beam-{max(options.beam, 1)}"
            ),
            "candidate_space": template.candidate_space,
            "exposure_method": "exact"
            if template.candidate_space <= options.exposure_budget
            else "extrapolated",
        }
    else:
        report(0.1, "scoring audit canaries")
        scores, score_name = _likelihoods(target, tokenizer, canaries, label_ids, options)
        results = [
            CanaryResult(
                id=c.id,
                inserted=c.inserted,
                repetitions=c.repetitions,
                label=c.label,
                score=float(s),
                secret=c.secret if reveal else None,
            )
            for c, s in zip(canaries, scores, strict=True)
        ]
    report(0.95, "one-run epsilon bound")
    summary["one_run_bound"] = _one_run(results, inserted, score_name, options)
    return CanaryReport(summary=CanarySummary(**summary), canaries=results)


def _secret_canaries(target, tokenizer, template, canaries, label_ids, options, reveal, report):
    tokens = tokenize_canaries(tokenizer, template, canaries, label_ids)
    exposures = measure_exposure(
        target,
        tokens,
        len(template.alphabet),
        budget=options.exposure_budget,
        n_samples=options.exposure_samples,
        batch_size=options.batch_size,
        seed=options.seed,
        progress=lambda done, total: report(0.7 * done / total, "canary exposure"),
    )
    span = lambda done, total: report(0.7 + 0.25 * done / total, "canary extraction")  # noqa: E731
    if target.kind == "text-classification":
        extractions = invert_classifier(
            target,
            tokens,
            steps=options.inversion_steps,
            lr=options.inversion_lr,
            beam=options.beam,
            seed=options.seed,
            progress=span,
        )
    else:
        extractions = decode_causal_lm(target, tokens, beam=max(options.beam, 1), progress=span)
    results = []
    for canary, exposure, extraction in zip(canaries, exposures, extractions, strict=True):
        recovered = "".join(template.alphabet[i] for i in extraction.recovered)
        results.append(
            CanaryResult(
                id=canary.id,
                inserted=canary.inserted,
                repetitions=canary.repetitions,
                label=canary.label,
                score=exposure.exposure,
                exposure=exposure.exposure,
                rank=exposure.rank,
                extracted=extraction.extracted,
                recovered=recovered if reveal else None,
                secret=canary.secret if reveal else None,
                per_position_accuracy=extraction.per_position_accuracy,
                inversion_rank=extraction.rank,
            )
        )
    return results, "exposure"


def _likelihoods(target, tokenizer, canaries, label_ids, options):
    """One score per canary text: log p(label | text), or the mean token log-probability."""
    texts = [c.text for c in canaries]
    if target.kind == "text-classification":
        from attacks.targets.text_classifier import TextClassifier

        logits = TextClassifier(target.model, tokenizer, target.device).logits(texts)
        log_p = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
        return log_p[np.arange(len(texts)), np.asarray(label_ids)], "label log-probability"
    from attacks.targets.causal_lm import CausalLM

    stats = CausalLM(target.model, tokenizer, target.device).token_statistics(texts)
    return np.array([lp.mean() for lp in stats.log_prob]), "mean token log-probability"


def _one_run(results, inserted, score_name, options) -> OneRunEpsilon | None:
    """None when the bound has nothing to compare (fewer than two canaries, or one side empty)."""
    if len(results) < 2 or inserted.all() or not inserted.any():
        return None
    bound = one_run_epsilon_lower_bound(
        np.array([r.score for r in results]),
        inserted,
        delta=options.delta,
        confidence=options.confidence,
    )
    return OneRunEpsilon(
        value=bound.value,
        confidence=bound.confidence,
        delta=bound.delta,
        k_pos=bound.k_pos,
        k_neg=bound.k_neg,
        n_guesses=bound.n_guesses,
        n_correct=bound.n_correct,
        n_canaries=bound.n_canaries,
        n_tests=bound.n_tests,
        method=bound.method,
        threat_model=bound.threat_model,
        score=score_name,
    )


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None
