"""`leakgate gc`: stale temporary files, unreferenced blobs and caches, and old artifacts by
policy are removed; whatever an artifact row or an audit still refers to is kept."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from tests.utils.factories import dataset_bytes, upload

DAY = 24 * 3600


def aged(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_gc_removes_only_what_nothing_refers_to(client, auth, uploaded, monkeypatch):
    from typer.testing import CliRunner

    from app.artifacts.models import Artifact
    from app.artifacts.storage import Storage
    from app.cli.main import cli
    from app.core.config import get_settings
    from app.core.db import session_scope
    from app.core.timeutil import utcnow

    spec = {"model": {"name": "tiny"}, **uploaded}
    assert client.post("/v1/audits", json=spec, headers=auth).status_code == 202
    spare = upload(client, auth, dataset_bytes(7, offset=500), "dataset", "spare.jsonl").json()

    storage = Storage(Path(get_settings().storage_dir))
    stale_tmp = storage.tmp / "crashed-upload"
    stale_tmp.write_bytes(b"x" * 100)
    aged(stale_tmp, 2 * DAY)
    fresh_tmp = storage.tmp / "uploading-now"
    fresh_tmp.write_bytes(b"y")
    orphan_cache = storage.model_dir("0" * 64)
    (orphan_cache / "sub").mkdir(parents=True)
    (orphan_cache / "sub" / "model.safetensors").write_bytes(b"z" * 1000)
    aged(orphan_cache, 2 * DAY)
    orphan_blob = storage.blob_path("f" * 64)
    orphan_blob.parent.mkdir(parents=True, exist_ok=True)
    orphan_blob.write_bytes(b"b" * 10)
    aged(orphan_blob, 2 * DAY)
    with session_scope() as db_session:
        target_sha = db_session.get(Artifact, uploaded["target"]).sha256
        spare_sha = db_session.get(Artifact, spare["id"]).sha256
        tenant_id = db_session.get(Artifact, spare["id"]).tenant_id
        # This tenant's uploads are old now; only the audit's references keep its artifacts.
        # (Other tests' artifacts in the shared database are recent, so they stay.)
        db_session.execute(
            update(Artifact)
            .where(Artifact.tenant_id == tenant_id)
            .values(created_at=utcnow() - timedelta(days=40))
        )
    for blob in (storage.blob_path(target_sha), storage.blob_path(spare_sha)):
        aged(blob, 2 * DAY)
    aged(storage.model_dir(target_sha), 2 * DAY)

    runner = CliRunner()
    dry = runner.invoke(cli, ["gc", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would remove: 1 temporary file(s), 1 model cache(s), 1 blob(s), 0 artifact(s)" in (
        dry.output
    )
    assert stale_tmp.exists() and orphan_cache.exists()

    monkeypatch.setenv("LEAKGATE_GC_ARTIFACT_MAX_AGE_DAYS", "30")
    get_settings.cache_clear()
    done = runner.invoke(cli, ["gc"])
    assert done.exit_code == 0, done.output
    assert "removed: 1 temporary file(s), 1 model cache(s), 2 blob(s), 1 artifact(s)" in (
        done.output
    )
    assert not stale_tmp.exists() and fresh_tmp.exists()
    assert not orphan_cache.exists() and not orphan_blob.exists()
    assert not storage.blob_path(spare_sha).exists()
    assert storage.blob_path(target_sha).exists() and storage.model_dir(target_sha).exists()
    with session_scope() as db_session:
        left = set(db_session.scalars(select(Artifact.id)))
    assert spare["id"] not in left and set(uploaded.values()) <= left
    assert client.get(f"/v1/artifacts/{spare['id']}", headers=auth).status_code == 404
