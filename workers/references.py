"""Reference models for LiRA/RMIA on text classifiers: trained here or uploaded by the pipeline.

Online mode trains each reference model on a random half of audited + population records, so
every audited record is IN for about half of them; offline mode trains on population halves only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from attacks.data import Record
from attacks.mia import AttackInputs
from attacks.reference import (
    ReferenceTextClassifiers,
    TrainConfig,
    inclusion_masks,
    train_reference_text_classifiers,
)
from attacks.reference.training import Progress
from attacks.report import ReferenceModels
from attacks.signals import classifier_signals
from workers.context import AuditContext


def _split_inputs(
    signals: dict[str, np.ndarray],
    population_signals: dict[str, np.ndarray],
    stacked: dict[str, np.ndarray],
    in_mask: np.ndarray,
    n: int,
) -> AttackInputs:
    """Reference signals over audited records then population, split at n for the attacks."""
    return AttackInputs(
        target=signals,
        references={name: values[:, :n] for name, values in stacked.items()},
        reference_in=in_mask[:, :n],
        population_target=population_signals,
        population_references={name: values[:, n:] for name, values in stacked.items()},
        population_reference_in=in_mask[:, n:],
    )


def _stack(per_model: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.stack([s[name] for s in per_model]) for name in per_model[0]}


def text_classifier_references(
    ctx: AuditContext,
    classifier,
    target_dir,
    records: list[Record],
    labels: np.ndarray,
    signals: dict[str, np.ndarray],
    *,
    start: float,
) -> tuple[AttackInputs, ReferenceModels]:
    spec, ref_spec = ctx.spec, ctx.spec.reference_spec
    assert spec.population is not None
    population = ctx.records(spec.population)
    population_labels = classifier.label_ids([r.label for r in population])
    texts = [r.text for r in records] + [r.text for r in population]
    all_labels = np.concatenate([labels, population_labels])
    n, options = len(records), spec.options

    ctx.progress(start, "scoring population on the target", force=True)
    with ctx.timed("score"):
        population_logits = classifier.logits(
            [r.text for r in population],
            batch_size=options.batch_size,
            max_length=options.max_length,
            progress=ctx.progress.span(start, start + 0.05, "scoring population on the target"),
        )
    population_signals = classifier_signals(population_logits, population_labels)

    began = time.perf_counter()
    source: Literal["trained", "uploaded"]
    if ref_spec.uploaded:
        logits, in_mask, training_s, together = _uploaded(ctx, records, population, texts)
        source, shards, scoring_s = "uploaded", 1, None
    else:
        logits, in_mask, training_s, together, shards, scoring_s = _trained(
            ctx, target_dir, records, population, all_labels, start=start + 0.05
        )
        source = "trained"
    ctx.timings["references"] = time.perf_counter() - began

    per_model = [classifier_signals(logits[k], all_labels) for k in range(logits.shape[0])]
    stacked = _stack(per_model)
    inputs = _split_inputs(signals, population_signals, stacked, in_mask, n)
    info = ReferenceModels(
        count=int(logits.shape[0]),
        source=source,
        mode="online" if in_mask[:, :n].any() else "offline",
        n_population=len(population),
        training_seconds=training_s,
        # Sharded: both summed over shards (compute spent; shards overlap in time).
        scoring_seconds=(
            scoring_s if scoring_s is not None else ctx.timings["references"] - training_s
        ),
        trained_together=together,
        shards=shards,
    )
    return inputs, info


@dataclass
class ReferenceSetup:
    """Everything that decides what the trained references are: the texts (audited records,
    then population), their labels, each reference's IN mask and the training config. Built
    the same way by the audit's task and by every shard task, from the spec alone."""

    target_dir: Path
    texts: list[str]
    all_labels: np.ndarray
    pool: np.ndarray  # positions in `texts` the references may train on
    pool_masks: np.ndarray  # [K, len(pool)]
    in_mask: np.ndarray  # [K, len(texts)]
    config: TrainConfig
    base_dir: Path | None

    def train(
        self, progress: Progress | None, only: Sequence[int] | None = None
    ) -> ReferenceTextClassifiers:
        return train_reference_text_classifiers(
            self.target_dir,
            [self.texts[i] for i in self.pool],
            self.all_labels[self.pool],
            self.pool_masks,
            self.config,
            init="pretrained" if self.base_dir else "config",
            base_dir=self.base_dir,
            together=True,
            progress=progress,
            only=only,
        )


def reference_setup(
    ctx: AuditContext,
    target_dir: Path,
    records: list[Record],
    population: list[Record],
    all_labels: np.ndarray,
) -> ReferenceSetup:
    ref_spec = ctx.spec.reference_spec
    texts = [r.text for r in records] + [r.text for r in population]
    pool, pool_masks, in_mask = _inclusion(ctx, len(records), len(texts))
    base_dir = ctx.model_dir(ref_spec.base_model) if ref_spec.base_model else None
    return ReferenceSetup(
        Path(target_dir),
        texts,
        np.asarray(all_labels),
        pool,
        pool_masks,
        in_mask,
        _train_config(ctx),
        base_dir,
    )


def _inclusion(ctx: AuditContext, n: int, n_texts: int) -> tuple[np.ndarray, ...]:
    """The pool the references train on (online: audited + population texts; offline: the
    population), each reference's random half of it, and the IN mask over all texts."""
    ref_spec = ctx.spec.reference_spec
    pool = np.arange(n_texts) if ref_spec.mode == "online" else np.arange(n, n_texts)
    pool_masks = inclusion_masks(len(pool), ref_spec.count, seed=ctx.spec.options.seed)
    in_mask = np.zeros((ref_spec.count, n_texts), dtype=bool)
    in_mask[:, pool] = pool_masks
    return pool, pool_masks, in_mask


def _train_config(ctx: AuditContext) -> TrainConfig:
    spec, train = ctx.spec, ctx.spec.reference_spec.train
    return TrainConfig(
        epochs=train.epochs,
        lr=train.lr,
        batch_size=train.batch_size,
        weight_decay=train.weight_decay,
        seed=spec.options.seed,
        max_length=spec.options.max_length,
    )


def load_reference_setup(ctx: AuditContext, target_dir: Path, classifier) -> ReferenceSetup:
    """The setup as a shard task rebuilds it: from the spec's artifacts, like the audit's task."""
    spec = ctx.spec
    assert spec.members and spec.non_members and spec.population
    records = ctx.records(spec.members) + ctx.records(spec.non_members)
    population = ctx.records(spec.population)
    labels = classifier.label_ids([r.label for r in records + population])
    return reference_setup(ctx, target_dir, records, population, labels)


def shard_count(ctx: AuditContext) -> int:
    """The spec's `references.shards`, else the server's setting; never above the count."""
    ref_spec = ctx.spec.reference_spec
    wanted = ref_spec.shards if ref_spec.shards is not None else ctx.settings.reference_shards
    return max(1, min(wanted, ref_spec.count))


def _trained(ctx, target_dir, records, population, all_labels, *, start: float):
    spec, ref_spec = ctx.spec, ctx.spec.reference_spec
    setup = reference_setup(ctx, target_dir, records, population, all_labels)
    shards = shard_count(ctx)
    if shards > 1:
        from workers.shards import run_sharded

        sharded = run_sharded(ctx, setup, shards, start=start, end=0.85)
        return (
            sharded.logits,
            setup.in_mask,
            sharded.training_seconds,
            sharded.together,
            len(sharded.blocks),
            sharded.scoring_seconds,
        )
    stage = f"training {ref_spec.count} reference models"
    ctx.progress(start, stage, force=True)
    references = setup.train(ctx.progress.span(start, 0.75, stage))
    ctx.progress(0.75, "scoring with the reference models", force=True)
    logits = references.logits(
        setup.texts,
        batch_size=spec.options.batch_size,
        max_length=spec.options.max_length,
        progress=ctx.progress.span(0.75, 0.85, "scoring with the reference models"),
    )
    training_s, together = references.training_seconds, references.trained_together
    return logits, setup.in_mask, training_s, together, 1, None


def _uploaded(ctx, records, population, texts):
    """Score every uploaded reference model; its `trained_on` ids give the IN mask."""
    from attacks.targets import TextClassifier

    ids = [r.id for r in records] + [r.id for r in population]
    if len(set(ids)) != len(ids):
        raise ValueError(
            "uploaded reference models name records by id, but the members, non-members and "
            "population files share ids; give every record a unique `id`"
        )
    position = {record_id: i for i, record_id in enumerate(ids)}
    uploaded = ctx.spec.reference_spec.uploaded
    logits, in_mask = [], np.zeros((len(uploaded), len(ids)), dtype=bool)
    for k, reference in enumerate(uploaded):
        unknown = [i for i in reference.trained_on if i not in position]
        if unknown:
            raise ValueError(f"reference {k}: trained_on names unknown record ids {unknown[:5]}")
        in_mask[k, [position[i] for i in reference.trained_on]] = True
        model = TextClassifier.load(ctx.model_dir(reference.model))
        stage = f"scoring with reference model {k + 1}/{len(uploaded)}"
        logits.append(
            model.logits(
                texts,
                batch_size=ctx.spec.options.batch_size,
                max_length=ctx.spec.options.max_length,
                progress=ctx.progress.span(
                    0.35 + 0.5 * k / len(uploaded), 0.35 + 0.5 * (k + 1) / len(uploaded), stage
                ),
            )
        )
    return np.stack(logits), in_mask, 0.0, False


def causal_lm_references(
    ctx: AuditContext,
    target,
    records: list[Record],
    signals: dict[str, np.ndarray],
    *,
    start: float,
) -> tuple[AttackInputs, ReferenceModels]:
    """LiRA/RMIA inputs for a LoRA-adapter causal LM: K LoRA adapters trained over the
    audit's base model (the target's rank and modules), in one task (never sharded), on
    halves of the audited + population texts (online) or of the population (offline)."""
    from attacks.lm_signals import lm_signals
    from attacks.reference import lm_reference_signals, train_reference_lm_adapters
    from attacks.targets.causal_lm import CausalLM

    spec, ref_spec, options = ctx.spec, ctx.spec.reference_spec, ctx.spec.options
    assert spec.population is not None and spec.base_model is not None and spec.target
    population = ctx.records(spec.population)
    texts = [r.text for r in records] + [r.text for r in population]
    n = len(records)

    ctx.progress(start, "scoring population on the target", force=True)
    with ctx.timed("score"):
        population_stats = target.token_statistics(
            texts[n:],
            batch_size=options.batch_size,
            max_length=options.max_length,
            progress=ctx.progress.span(start, start + 0.05, "scoring population on the target"),
        )
    population_signals = lm_reference_signals(lm_signals(population_stats)["loss"])

    began = time.perf_counter()
    pool, pool_masks, in_mask = _inclusion(ctx, n, len(texts))
    adapter = ctx.artifact(spec.target).meta
    rank = int(adapter.get("r") or 8)
    base = CausalLM.load(
        ctx.model_dir(spec.base_model),
        target.device,
        tokenizer_dir=ctx.model_dir(spec.target),  # the merged target's: the one audited
    )
    stage = f"training {ref_spec.count} reference adapters"
    ctx.progress(start + 0.05, stage, force=True)
    references = train_reference_lm_adapters(
        base,
        [texts[i] for i in pool],
        pool_masks,
        _train_config(ctx),
        rank=rank,
        alpha=2 * rank,
        target_modules=adapter.get("target_modules"),
        progress=ctx.progress.span(start + 0.05, 0.75, stage),
    )
    ctx.progress(0.75, "scoring with the reference adapters", force=True)
    losses = references.mean_token_loss(
        texts,
        batch_size=options.batch_size,
        max_length=options.max_length,
        progress=ctx.progress.span(0.75, 0.85, "scoring with the reference adapters"),
    )
    ctx.timings["references"] = time.perf_counter() - began
    stacked = lm_reference_signals(losses)
    inputs = _split_inputs(signals, population_signals, stacked, in_mask, n)
    info = ReferenceModels(
        count=ref_spec.count,
        source="trained",
        mode="online" if in_mask[:, :n].any() else "offline",
        n_population=len(population),
        training_seconds=references.training_seconds,
        scoring_seconds=ctx.timings["references"] - references.training_seconds,
        trained_together=references.trained_together,
        shards=1,
    )
    return inputs, info
