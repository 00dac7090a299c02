"""Per-task scoring: turn the audited model and records into membership signals, once.

Every attack afterwards is a pure function over these arrays (see `attacks.mia`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attacks.data import Record
from attacks.device import describe_device
from attacks.metrics import utility
from attacks.mia import AttackInputs
from attacks.report import ReferenceModels, TargetInfo, Utility
from attacks.signals import classifier_signals
from workers.context import AuditContext


@dataclass
class SignalSet:
    """Signals of the audited records (members first, then non-members) and what came with them."""

    inputs: AttackInputs
    records: list[Record]
    n_members: int
    target: TargetInfo
    device: str
    utility: Utility | None = None
    reference_models: ReferenceModels | None = None

    @property
    def is_member(self) -> np.ndarray:
        flags = np.zeros(len(self.records), dtype=bool)
        flags[: self.n_members] = True
        return flags


def _audited(ctx: AuditContext) -> tuple[list[Record], int]:
    # The submit service resolves an audit split into both artifacts before queuing.
    assert ctx.spec.members is not None and ctx.spec.non_members is not None
    members = ctx.records(ctx.spec.members)
    non_members = ctx.records(ctx.spec.non_members)
    return members + non_members, len(members)


def _utility(
    ctx: AuditContext, correct: np.ndarray, n_members: int, evaluation_correct=None
) -> Utility:
    return utility(
        correct,
        n_members,
        evaluation_correct=evaluation_correct,
        confidence=ctx.spec.options.confidence,
    )


def _evaluation_correct(ctx: AuditContext, classifier) -> np.ndarray | None:
    """Whether the target classifies each record of the spec's evaluation set correctly."""
    if ctx.spec.evaluation is None:
        return None
    records = ctx.records(ctx.spec.evaluation)
    with ctx.timed("evaluation"):
        logits = classifier.logits(
            [r.text for r in records],
            batch_size=ctx.spec.options.batch_size,
            max_length=ctx.spec.options.max_length,
        )
    labels = classifier.label_ids([r.label for r in records])
    return np.argmax(logits, axis=1) == labels


def score_text_classifier(ctx: AuditContext) -> SignalSet:
    from attacks.targets import TextClassifier

    spec = ctx.spec
    assert spec.target is not None
    with ctx.timed("load"):
        ctx.progress(0.01, "loading model", force=True)
        target_dir = ctx.model_dir(spec.target)
        classifier = TextClassifier.load(target_dir)
        records, n_members = _audited(ctx)
        labels = classifier.label_ids([r.label for r in records])
    end = 0.3 if spec.uses_references else 0.85
    with ctx.timed("score"):
        ctx.progress(0.05, "scoring audited records", force=True)
        logits = classifier.logits(
            [r.text for r in records],
            batch_size=spec.options.batch_size,
            max_length=spec.options.max_length,
            progress=ctx.progress.span(0.05, end, "scoring audited records"),
        )
    signals = classifier_signals(logits, labels)
    evaluation_correct = _evaluation_correct(ctx, classifier)
    inputs = AttackInputs(target=signals)
    reference_models = None
    if spec.uses_references:
        from workers.references import text_classifier_references

        inputs, reference_models = text_classifier_references(
            ctx, classifier, target_dir, records, labels, signals, start=end
        )
    return SignalSet(
        inputs=inputs,
        records=records,
        n_members=n_members,
        target=classifier.target_info(),
        device=describe_device(classifier.device),
        utility=_utility(ctx, signals["correct"], n_members, evaluation_correct),
        reference_models=reference_models,
    )


def _class_indices(records: list[Record]) -> np.ndarray:
    """Predictions' labels: class indices (the upload check requires them)."""
    labels = [r.label for r in records]
    if any(label is None for label in labels):
        raise ValueError("every record of a predictions dataset needs a label")
    return np.array([int(label) for label in labels if label is not None])


def score_predictions(ctx: AuditContext) -> SignalSet:
    """A black-box target: the pipeline uploaded each record's class probabilities or logits."""
    with ctx.timed("load"):
        ctx.progress(0.05, "reading uploaded predictions", force=True)
        records, n_members = _audited(ctx)
    logits = np.array([r.outputs for r in records], dtype=np.float64)
    if records[0].outputs_kind == "probs":
        logits = np.log(np.clip(logits, 1e-300, None))
    labels = _class_indices(records)
    signals = classifier_signals(logits, labels)
    evaluation_correct = None
    if ctx.spec.evaluation is not None:
        evaluation = ctx.records(ctx.spec.evaluation)
        outputs = np.array([r.outputs for r in evaluation], dtype=np.float64)
        truth = _class_indices(evaluation)
        evaluation_correct = np.argmax(outputs, axis=1) == truth
    return SignalSet(
        inputs=AttackInputs(target=signals),
        records=records,
        n_members=n_members,
        target=TargetInfo(task="predictions", num_labels=logits.shape[1]),
        device="none (uploaded predictions)",
        utility=_utility(ctx, signals["correct"], n_members, evaluation_correct),
    )


def score_causal_lm(ctx: AuditContext) -> SignalSet:
    from attacks.lm_signals import lm_signals
    from attacks.targets.causal_lm import CausalLM

    spec = ctx.spec
    assert spec.target is not None
    with ctx.timed("load"):
        ctx.progress(0.01, "loading model", force=True)
        model = CausalLM.load(ctx.model_dir(spec.target))
        records, n_members = _audited(ctx)
    texts = [r.text for r in records]
    # Progress: audited records end at `end`, the reference LM at `scored`; reference
    # adapters, when asked for, take most of the rest.
    if spec.uses_references:
        end, scored = (0.15 if spec.reference_lm else 0.25), 0.25
    else:
        end, scored = (0.5 if spec.reference_lm else 0.85), 0.85
    with ctx.timed("score"):
        stats = model.token_statistics(
            texts,
            batch_size=spec.options.batch_size,
            max_length=spec.options.max_length,
            progress=ctx.progress.span(0.05, end, "scoring audited records"),
        )
        reference = None
        if spec.reference_lm is not None:
            ctx.progress(end, "scoring with the reference model", force=True)
            reference_model = CausalLM.load(ctx.model_dir(spec.reference_lm))
            reference = reference_model.token_statistics(
                texts,
                batch_size=spec.options.batch_size,
                max_length=spec.options.max_length,
                progress=ctx.progress.span(end, scored, "scoring with the reference model"),
            )
    signals = lm_signals(stats, k=spec.options.min_k, reference=reference)
    inputs = AttackInputs(target=signals)
    reference_models = None
    if spec.uses_references:
        from attacks.reference import lm_reference_signals
        from workers.references import causal_lm_references

        signals = {**signals, **lm_reference_signals(signals["loss"])}
        inputs, reference_models = causal_lm_references(ctx, model, records, signals, start=scored)
    return SignalSet(
        inputs=inputs,
        records=records,
        n_members=n_members,
        target=model.target_info(),
        device=describe_device(model.device),
        reference_models=reference_models,
    )


SCORERS = {
    "text-classification": score_text_classifier,
    "causal-lm": score_causal_lm,
    "predictions": score_predictions,
}
