"""What every stage of one audit needs: the spec, its artifacts, storage, progress and a
heartbeat."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from app.artifacts.models import Artifact
from app.artifacts.storage import Storage
from app.audits import lifecycle
from app.audits.models import Audit
from app.audits.schemas import StoredAuditSpec
from app.core.config import Settings
from app.core.db import session_factory
from attacks.data import Record, read_records

log = logging.getLogger(__name__)


class Heartbeat:
    """Writes a claimed audit's heartbeat every `interval_s` from a thread of its own.

    Stages call the progress reporter when they can, but some are silent for long (a model
    load, one big reference-model epoch); the heartbeat must say "this worker is alive" through
    them, or the sweeper would hand a live audit to a second worker. The thread uses its own
    session (sessions are not shared across threads), stops when the audit is no longer this
    worker's, and survives a database outage by trying again at the next beat.
    """

    def __init__(self, audit_id: str, worker: str, interval_s: float) -> None:
        self.audit_id, self.worker, self.interval_s = audit_id, worker, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{audit_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=max(5.0, 2 * self.interval_s))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with session_factory()() as db_session:
                    if not lifecycle.beat(db_session, self.audit_id, worker=self.worker):
                        return  # ended, cancelled and ended, or taken over: nothing to keep alive
            except Exception:
                log.warning("heartbeat of audit %s not written; retrying", self.audit_id)


class ProgressReporter:
    """Writes progress at most every `min_interval_s` and checks for cancellation each time."""

    def __init__(
        self, db_session: Session, audit_id: str, worker: str, min_interval_s: float = 0.5
    ) -> None:
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
        """A (done, total) callback mapping step progress onto [start, end] of the whole audit."""
        return lambda done, total: self(start + (end - start) * done / max(total, 1), stage)


@dataclass
class AuditContext:
    db_session: Session
    audit: Audit
    spec: StoredAuditSpec
    settings: Settings
    storage: Storage
    progress: ProgressReporter
    timings: dict[str, float] = field(default_factory=dict)

    def artifact(self, artifact_id: str) -> Artifact:
        found = self.db_session.get(Artifact, artifact_id)
        if found is None or found.tenant_id != self.audit.tenant_id:
            raise LookupError(f"artifact {artifact_id} is gone")
        return found

    def model_dir(self, artifact_id: str) -> Path:
        """The model's unpacked folder; an adapter is merged into the spec's base model first
        (cached beside the unpacked models, so later stages and audits reuse it)."""
        artifact = self.artifact(artifact_id)
        if not artifact.meta.get("adapter"):
            return self._unpacked(artifact.sha256)
        if self.spec.base_model is None:
            raise ValueError(f"model {artifact_id} is an adapter; the audit names no base_model")
        base = self.artifact(self.spec.base_model)
        dest = self.storage.models / f"merged-{artifact.sha256[:32]}-{base.sha256[:32]}"
        dest = dest.with_name(f"{dest.name}-{self.spec.task}")
        if not dest.exists():
            from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

            from attacks.targets.adapters import merge_adapter

            auto_class = (
                AutoModelForCausalLM
                if self.spec.task == "causal-lm"
                else AutoModelForSequenceClassification
            )
            with self.timed("merge adapter"):
                merge_adapter(
                    auto_class, self._unpacked(base.sha256), self._unpacked(artifact.sha256), dest
                )
        os.utime(dest)  # in use: gc keeps caches younger than LEAKGATE_GC_TMP_AGE_S
        return dest

    def _unpacked(self, sha256: str) -> Path:
        return self.storage.unpack_model(
            sha256,
            max_entries=self.settings.max_archive_entries,
            max_unpacked_bytes=self.settings.max_archive_unpacked_bytes,
            max_file_bytes=self.settings.max_archive_file_bytes,
            reserve_bytes=self.settings.storage_reserve_bytes,
        )

    def records(self, artifact_id: str) -> list[Record]:
        dataset = self.artifact(artifact_id)
        return read_records(
            self.storage.blob_path(dataset.sha256),
            dataset.meta["format"],
            max_records=self.settings.max_dataset_records,
            require_label=self.spec.task != "causal-lm",
        )

    def timed(self, name: str) -> _Timer:
        return _Timer(self.timings, name)


class _Timer:
    def __init__(self, timings: dict[str, float], name: str) -> None:
        self.timings, self.name = timings, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.name] = (
            self.timings.get(self.name, 0.0) + time.perf_counter() - self.start
        )
