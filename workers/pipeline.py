"""One audit from stored artifacts to a stored report: load, score, attack, decide, write.

Orchestration only (stages, progress, cancellation); every statistic comes from `attacks`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session
from transformers.utils import logging as hf_logging

from app.artifacts.models import Artifact
from app.artifacts.storage import Storage
from app.audits import lifecycle
from app.audits.models import Audit
from app.audits.schemas import AuditSpec
from app.core.config import Settings
from app.core.timeutil import utcnow
from attacks.data import Record, read_records
from attacks.metrics import evaluate_attack
from attacks.mia import get_attack
from attacks.privacy.empirical import epsilon_lower_bound
from attacks.privacy.verdict import decide
from attacks.report import (
    REPORT_SCHEMA_VERSION,
    LeakageReport,
    Utility,
    best_epsilon_bound,
)
from attacks.signals import classifier_signals
from attacks.targets import TextClassifier

DEFAULT_DELTA = 1e-5

# Worker logs are for operators; transformers' per-load progress bars only add noise there.
hf_logging.disable_progress_bar()


class ProgressReporter:
    """Writes progress at most every `min_interval_s` and checks for cancellation each time."""

    def __init__(
        self, db_session: Session, audit_id: str, worker: str, min_interval_s: float = 0.5
    ):
        self.db_session, self.audit_id, self.worker = db_session, audit_id, worker
        self.min_interval_s = min_interval_s
        self._last = 0.0

    def __call__(self, progress: float, stage: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.min_interval_s:
            self._last = now
            lifecycle.report_progress(
                self.db_session, self.audit_id, worker=self.worker, progress=progress, stage=stage
            )

    def span(self, start: float, end: float, stage: str) -> Callable[[int, int], None]:
        """A (done, total) callback mapping batch progress onto [start, end] of the whole audit."""
        return lambda done, total: self(start + (end - start) * done / max(total, 1), stage)


def run_pipeline(db_session: Session, audit_id: str, *, worker: str, settings: Settings) -> None:
    audit = db_session.get(Audit, audit_id)
    assert audit is not None
    spec = AuditSpec.model_validate(audit.spec)
    assert settings.storage_dir is not None
    storage = Storage(settings.storage_dir)
    progress = ProgressReporter(db_session, audit_id, worker)
    timings: dict[str, float] = {}

    def artifact(artifact_id: str) -> Artifact:
        found = db_session.get(Artifact, artifact_id)
        if found is None or found.tenant_id != audit.tenant_id:
            raise LookupError(f"artifact {artifact_id} is gone")
        return found

    clock = time.perf_counter()
    progress(0.01, "loading model", force=True)
    target = artifact(spec.target)
    model_dir = storage.unpack_model(
        target.sha256,
        max_entries=settings.max_archive_entries,
        max_unpacked_bytes=settings.max_archive_unpacked_bytes,
    )
    classifier = TextClassifier.load(model_dir)
    members = _records(storage, artifact(spec.members), settings)
    non_members = _records(storage, artifact(spec.non_members), settings)
    timings["load"] = time.perf_counter() - clock

    clock = time.perf_counter()
    progress(0.05, "scoring members", force=True)
    member_labels = classifier.label_ids([r.label for r in members])
    non_member_labels = classifier.label_ids([r.label for r in non_members])
    n_m, n_n = len(members), len(non_members)
    split = 0.05 + 0.8 * n_m / (n_m + n_n)
    member_logits = classifier.logits(
        [r.text for r in members],
        batch_size=spec.options.batch_size,
        max_length=spec.options.max_length,
        progress=progress.span(0.05, split, "scoring members"),
    )
    progress(split, "scoring non-members", force=True)
    non_member_logits = classifier.logits(
        [r.text for r in non_members],
        batch_size=spec.options.batch_size,
        max_length=spec.options.max_length,
        progress=progress.span(split, 0.85, "scoring non-members"),
    )
    timings["score"] = time.perf_counter() - clock

    clock = time.perf_counter()
    progress(0.86, "running attacks", force=True)
    member_signals = classifier_signals(member_logits, member_labels)
    non_member_signals = classifier_signals(non_member_logits, non_member_labels)
    delta = spec.dp_claim.delta if spec.dp_claim else DEFAULT_DELTA
    results, bounds = [], {}
    for i, name in enumerate(spec.attacks):
        attack = get_attack(name)
        member_scores = attack.score(member_signals)
        non_member_scores = attack.score(non_member_signals)
        results.append(
            evaluate_attack(
                name,
                member_scores,
                non_member_scores,
                n_bootstrap=spec.options.n_bootstrap,
                confidence=spec.options.confidence,
                seed=spec.options.seed,
            )
        )
        bounds[name] = epsilon_lower_bound(
            member_scores,
            non_member_scores,
            delta=delta,
            confidence=spec.options.confidence,
            n_tests=len(spec.attacks),
            seed=spec.options.seed,
        )
        progress(0.86 + 0.1 * (i + 1) / len(spec.attacks), f"attack {name} done")
    best = best_epsilon_bound(bounds)
    verdict = decide(best, spec.dp_claim)
    timings["attacks"] = time.perf_counter() - clock

    report = LeakageReport(
        target=classifier.target_info(),
        attacks=results,
        epsilon_lower_bound=best,
        per_attack_epsilon=bounds,
        verdict=verdict,
        utility=Utility(
            member_accuracy=float(np.mean(member_signals["correct"])),
            non_member_accuracy=float(np.mean(non_member_signals["correct"])),
            n_members=n_m,
            n_non_members=n_n,
        ),
        device=describe_device(classifier.device),
        timings=timings,
        library_versions={p: version(p) for p in ("leakgate", "torch", "transformers")},
        created_at=utcnow(),
    )
    progress(0.98, "writing report", force=True)
    lifecycle.succeed(
        db_session,
        audit_id,
        worker=worker,
        report_body=report.model_dump(mode="json"),
        schema_version=REPORT_SCHEMA_VERSION,
        verdict=verdict.status,
        auc=max(r.auc for r in results),
        epsilon_lower_bound=best.value if best else None,
    )


def describe_device(device: str) -> str:
    """`cuda (NVIDIA H100 ...)` or `cpu`, so a report says where it was computed."""
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(device)})"
    return device


def _records(storage: Storage, dataset: Artifact, settings: Settings) -> list[Record]:
    path: Path = storage.blob_path(dataset.sha256)
    return read_records(path, dataset.meta["format"], max_records=settings.max_dataset_records)
