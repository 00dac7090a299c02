"""The canary stage of an audit: measure every canary of the spec's set on the target model."""

from __future__ import annotations

from typing import Literal

from app.canaries import service as canary_service
from app.canaries.models import CanarySet
from attacks.canaries.audit import CanaryOptions, measure_canaries
from attacks.report import CanaryReport
from workers.context import AuditContext


def canary_section(
    ctx: AuditContext, *, delta: float, start: float, end: float
) -> CanaryReport | None:
    """The report's canary section, or None when the spec names no canary set; progress (and
    with it the cancel check) is reported on [start, end] of the whole audit."""
    spec = ctx.spec
    if spec.canary_set is None:
        return None
    row = ctx.db_session.get(CanarySet, spec.canary_set)
    if row is None or row.tenant_id != ctx.audit.tenant_id:
        raise LookupError(f"canary set {spec.canary_set} is gone")
    assert spec.target is not None
    ctx.progress(start, "loading model for canaries", force=True)
    from attacks.targets import CausalLM, TextClassifier

    target: TextClassifier | CausalLM
    task: Literal["text-classification", "causal-lm"]
    if spec.task == "text-classification":
        target, task = TextClassifier.load(ctx.model_dir(spec.target)), spec.task
    else:
        target, task = CausalLM.load(ctx.model_dir(spec.target)), "causal-lm"
    canaries = canary_service.canaries_of(row)
    label_ids = None
    if isinstance(target, TextClassifier):
        label_ids = target.label_ids([c.label for c in canaries]).tolist()
    options = CanaryOptions(
        batch_size=max(spec.options.batch_size or 0, 256),
        confidence=spec.options.confidence,
        delta=delta,
        seed=spec.options.seed,
    )
    with ctx.timed("canaries"):
        return measure_canaries(
            target.model,
            target.tokenizer,
            task,
            canary_set=row.id,
            kind=row.kind,
            canaries=canaries,
            template=canary_service.template_of(row),
            label_ids=label_ids,
            options=options,
            reveal=spec.include_text,
            device=target.device,
            progress=lambda done, stage: ctx.progress(start + (end - start) * done, stage),
        )
