"""A model forced past the upload check (its artifact written directly) fails its audit with a
message naming the tensors, instead of auditing randomly initialised weights."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from app.client import pack_model_folder
from attacks.testing import build_tiny_text_classifier
from tests.utils.factories import LABELS, TEXTS, dataset_bytes, new_key, upload
from tests.utils.worker import api_client, worker_service

pytestmark = pytest.mark.slow


def test_an_audit_of_weights_that_do_not_fit_fails_naming_them(pg_schema, tmp_path):
    from app.artifacts.models import Artifact
    from app.artifacts.storage import Storage
    from app.core.config import get_settings
    from app.core.db import session_scope

    good = build_tiny_text_classifier(tmp_path / "good", TEXTS, LABELS)
    bad = build_tiny_text_classifier(tmp_path / "bad", TEXTS, LABELS)
    save_file({"w": torch.zeros(4)}, str(bad / "model.safetensors"))
    bad_body = pack_model_folder(bad, tmp_path / "bad.tar.gz").read_bytes()

    with (
        worker_service(pg_schema, tmp_path / "home") as env,
        api_client(env) as client,
    ):
        auth = {"Authorization": f"Bearer {new_key()}"}
        good_body = pack_model_folder(good, tmp_path / "good.tar.gz").read_bytes()
        accepted = upload(client, auth, good_body, "model", "good.tar.gz").json()
        members = upload(client, auth, dataset_bytes(20), "dataset", "m.jsonl").json()
        non_members = upload(client, auth, dataset_bytes(20, 100), "dataset", "n.jsonl").json()

        sha = hashlib.sha256(bad_body).hexdigest()
        storage = Storage(Path(get_settings().storage_dir))
        storage.blob_path(sha).parent.mkdir(parents=True, exist_ok=True)
        storage.blob_path(sha).write_bytes(bad_body)
        with session_scope() as db_session:
            tenant_id = db_session.get(Artifact, accepted["id"]).tenant_id
            forced = Artifact(
                tenant_id=tenant_id,
                kind="model",
                filename="bad.tar.gz",
                sha256=sha,
                size_bytes=len(bad_body),
                meta=accepted["meta"],
            )
            db_session.add(forced)
            db_session.flush()
            forced_id = forced.id

        spec = {
            "model": {"name": "forced"},
            "target": forced_id,
            "members": members["id"],
            "non_members": non_members["id"],
        }
        response = client.post("/v1/audits", json=spec, headers=auth)
        assert response.status_code == 202, response.text
        audit_id = response.json()["id"]
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            audit = client.get(f"/v1/audits/{audit_id}", headers=auth).json()
            if audit["state"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.5)
        assert audit["state"] == "failed", audit
        assert "WeightsMismatch" in audit["error"]
        assert "tensor(s) missing: bert.embeddings.LayerNorm.bias" in audit["error"]
        assert "1 tensor(s) unexpected: w" in audit["error"]
