"""Accept an upload: validate it fully, then store the blob and its row, or store nothing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.artifacts import archives
from app.artifacts.adapters import inspect_adapter_folder, is_adapter_folder
from app.artifacts.errors import ArtifactRejected, UploadTooLarge
from app.artifacts.models import Artifact
from app.artifacts.schemas import ArtifactKind
from app.artifacts.storage import Received, Storage
from app.artifacts.validation import inspect_dataset, inspect_model_folder_budgeted
from app.core.config import Settings
from app.core.errors import found
from app.tenants.models import Tenant

INSPECTED_MARK = ".leakgate-inspected.json"
"""Written into a model's cache folder once it passed inspection, so an identical upload
(same SHA-256) is not inspected again while its cache exists."""
SAFE_FILENAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def clean_filename(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or len(name) > 255 or not set(name) <= SAFE_FILENAME_CHARS:
        raise ArtifactRejected(
            f"filename {filename!r} must be 1-255 characters of letters, digits, '.', '_', '-'"
        )
    return name


def validate_received(
    *, storage: Storage, settings: Settings, kind: ArtifactKind, filename: str, received: Received
) -> dict:
    """Run the kind's checks on the temporary file; a model is unpacked once, into its cache."""
    if kind is ArtifactKind.dataset:
        return inspect_dataset(
            received.path,
            filename,
            max_records=settings.max_dataset_records,
            max_record_chars=settings.max_record_chars,
            max_labels=settings.max_labels,
        )
    if filename.lower().endswith(tuple(archives.PICKLE_SUFFIXES)):
        raise ArtifactRejected(f"{filename} is pickled weights: {archives.PICKLE_HINT}")
    cached = _inspected_meta(storage.model_dir(received.sha256))
    if cached is not None:
        return cached
    work = storage.new_tmp_path("-model")
    try:
        archives.extract(
            received.path,
            work,
            max_entries=settings.max_archive_entries,
            max_unpacked_bytes=settings.max_archive_unpacked_bytes,
            max_file_bytes=settings.max_archive_file_bytes,
            reserve_bytes=settings.storage_reserve_bytes,
        )
        if is_adapter_folder(work):  # PEFT: checked against its base when an audit names it
            meta = inspect_adapter_folder(work, max_config_bytes=settings.max_config_bytes)
        else:
            meta = inspect_model_folder_budgeted(
                work,
                max_config_bytes=settings.max_config_bytes,
                max_labels=settings.max_labels,
                memory_bytes=settings.inspect_memory_bytes,
                timeout_s=settings.inspect_timeout_s,
            )
        (work / INSPECTED_MARK).write_text(json.dumps(meta), encoding="utf-8")
        dest = storage.model_dir(received.sha256)
        if dest.exists():  # unpacked by a worker from the same bytes: mark it inspected
            os.replace(work / INSPECTED_MARK, dest / INSPECTED_MARK)
        archives.copy_tree_atomically(work, dest)
        return meta
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _inspected_meta(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / INSPECTED_MARK).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def tenant_usage(*, db_session: Session, tenant: Tenant) -> int:
    """Bytes of distinct uploads a tenant stores (a blob uploaded twice counts once)."""
    distinct = (
        select(Artifact.sha256, Artifact.size_bytes)
        .where(Artifact.tenant_id == tenant.id)
        .distinct()
        .subquery()
    )
    return int(db_session.scalar(select(func.coalesce(func.sum(distinct.c.size_bytes), 0))) or 0)


def check_quota(
    *, db_session: Session, settings: Settings, tenant: Tenant, received: Received
) -> None:
    """Refuse an upload that would take the tenant past its storage quota (413, like the
    upload limit: both limit what a client sends; a full volume is the server's 507).

    Checked once the body is in (bounded by the upload limit), because a blob the tenant
    already stores costs nothing more and only its hash tells.
    """
    quota = settings.tenant_quota_bytes
    if not quota:
        return
    already = db_session.scalar(
        select(Artifact.id).where(
            Artifact.tenant_id == tenant.id, Artifact.sha256 == received.sha256
        )
    )
    if already is not None:
        return
    used = tenant_usage(db_session=db_session, tenant=tenant)
    if used + received.size > quota:
        raise UploadTooLarge(
            f"upload of {received.size} bytes exceeds this tenant's storage quota: {used} of "
            f"{quota} bytes are used (LEAKGATE_TENANT_QUOTA_BYTES); ask the operator to remove "
            "old artifacts (leakgate gc) or raise the quota"
        )


def create(
    *,
    db_session: Session,
    storage: Storage,
    settings: Settings,
    tenant: Tenant,
    kind: ArtifactKind,
    filename: str,
    received: Received,
) -> Artifact:
    try:
        check_quota(db_session=db_session, settings=settings, tenant=tenant, received=received)
        meta = validate_received(
            storage=storage, settings=settings, kind=kind, filename=filename, received=received
        )
        storage.commit(received)
    except BaseException:  # rejected, or the disk filled up: no file is left behind
        storage.discard(received)
        raise
    artifact = Artifact(
        tenant_id=tenant.id,
        kind=kind.value,
        filename=filename,
        sha256=received.sha256,
        size_bytes=received.size,
        meta=meta,
    )
    db_session.add(artifact)
    db_session.commit()
    return artifact


def get(*, db_session: Session, tenant: Tenant, artifact_id: str) -> Artifact | None:
    """Another tenant's artifact is indistinguishable from a missing one."""
    return db_session.scalar(
        select(Artifact).where(Artifact.id == artifact_id, Artifact.tenant_id == tenant.id)
    )


def get_or_404(*, db_session: Session, tenant: Tenant, artifact_id: str) -> Artifact:
    artifact = get(db_session=db_session, tenant=tenant, artifact_id=artifact_id)
    return found(artifact, "artifact", artifact_id)


def get_all(
    *, db_session: Session, tenant: Tenant, limit: int, offset: int
) -> tuple[list[Artifact], int]:
    """One page of the tenant's artifacts, newest first, and how many there are in all."""
    query = select(Artifact).where(Artifact.tenant_id == tenant.id)
    total = db_session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = db_session.scalars(
        query.order_by(Artifact.created_at.desc(), Artifact.id).limit(limit).offset(offset)
    )
    return list(items), total
