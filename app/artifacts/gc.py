"""Storage garbage collection: what `leakgate gc` removes, and why each is safe to remove.

- `tmp/` entries older than `gc_tmp_age_s`: uploads and unpackings in progress live there for
  at most the upload timeout; older ones are left by crashes.
- Model caches (`models/<sha256>`) and blobs no artifact row refers to: a rejected or deleted
  upload's leftovers. Younger than `gc_tmp_age_s` they are kept, because a blob is moved into
  place (and a cache unpacked) just before its row is committed.
- By policy only (`gc_artifact_max_age_days` > 0): artifacts older than that which no audit
  spec and no canary set refers to, with their blobs and caches once no other row uses them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.artifacts.models import Artifact
from app.artifacts.storage import Storage
from app.audits.models import Audit
from app.canaries.models import CanarySet
from app.core.config import Settings
from app.core.timeutil import utcnow


@dataclass
class GcReport:
    """What one collection removed (or would remove, in a dry run)."""

    tmp_entries: list[str] = field(default_factory=list)
    model_caches: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    freed_bytes: int = 0


def collect(
    *,
    db_session: Session,
    storage: Storage,
    settings: Settings,
    dry_run: bool = False,
    now: float | None = None,
) -> GcReport:
    """Remove what nothing refers to any more; returns what was (or would be) removed."""
    now = time.time() if now is None else now
    cutoff = now - settings.gc_tmp_age_s
    report = GcReport()

    def remove(path: Path, bucket: list[str]) -> None:
        bucket.append(path.name)
        report.freed_bytes += _size(path)
        if not dry_run:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    for entry in _children(storage.tmp):
        if _mtime(entry) < cutoff:
            remove(entry, report.tmp_entries)

    if settings.gc_artifact_max_age_days:
        old = utcnow() - timedelta(days=settings.gc_artifact_max_age_days)
        referenced = _referenced_artifact_ids(db_session)
        stale = [
            artifact
            for artifact in db_session.scalars(select(Artifact).where(Artifact.created_at < old))
            if artifact.id not in referenced
        ]
        report.artifacts = [artifact.id for artifact in stale]
        if stale and not dry_run:
            db_session.execute(delete(Artifact).where(Artifact.id.in_(report.artifacts)))
            db_session.commit()

    in_use = set(db_session.scalars(select(Artifact.sha256).distinct()))
    if dry_run:  # the rows a real run would delete no longer hold their blobs
        removed = set(report.artifacts)
        in_use = set(
            db_session.scalars(
                select(Artifact.sha256).where(Artifact.id.not_in(removed)).distinct()
            )
        )
    for cache in _children(storage.models):
        if cache.name not in in_use and _mtime(cache) < cutoff:
            remove(cache, report.model_caches)
    for blob in (b for shard in _children(storage.blobs) for b in _children(shard)):
        if blob.name not in in_use and _mtime(blob) < cutoff:
            remove(blob, report.blobs)
    return report


def _referenced_artifact_ids(db_session: Session) -> set[str]:
    """Every artifact id named anywhere in an audit spec, and every canary set's dataset."""
    ids: set[str] = set()
    for spec in db_session.scalars(select(Audit.spec)):
        ids.update(_strings(spec))
    ids.update(i for i in db_session.scalars(select(CanarySet.dataset_id)) if i is not None)
    return ids


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except FileNotFoundError:
        return []


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file())
