"""Accept an upload: validate it fully, then store the blob and its row, or store nothing."""

from __future__ import annotations

import shutil

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.artifacts import archives
from app.artifacts.errors import ArtifactRejected
from app.artifacts.models import Artifact
from app.artifacts.schemas import ArtifactKind
from app.artifacts.storage import Received, Storage
from app.artifacts.validation import inspect_dataset, inspect_model_folder
from app.core.config import Settings
from app.core.errors import found
from app.tenants.models import Tenant

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
        return inspect_dataset(received.path, filename, max_records=settings.max_dataset_records)
    if filename.lower().endswith(tuple(archives.PICKLE_SUFFIXES)):
        raise ArtifactRejected(f"{filename} is pickled weights: {archives.PICKLE_HINT}")
    work = storage.new_tmp_path("-model")
    try:
        archives.extract(
            received.path,
            work,
            max_entries=settings.max_archive_entries,
            max_unpacked_bytes=settings.max_archive_unpacked_bytes,
        )
        meta = inspect_model_folder(work)
        archives.copy_tree_atomically(work, storage.model_dir(received.sha256))
        return meta
    finally:
        shutil.rmtree(work, ignore_errors=True)


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


def get_all(*, db_session: Session, tenant: Tenant, limit: int, offset: int) -> list[Artifact]:
    return list(
        db_session.scalars(
            select(Artifact)
            .where(Artifact.tenant_id == tenant.id)
            .order_by(Artifact.created_at.desc())
            .limit(limit)
            .offset(offset)
        )
    )
