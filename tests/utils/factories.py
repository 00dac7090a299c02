"""Factories: upload bodies (a tiny model, datasets, archives), uploads and API keys."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from pathlib import Path

from app.client import pack_model_folder

TEXTS = ["check my balance", "send money to bob", "i lost my card", "what is the loan rate"]
LABELS = ["balance", "transfer", "card", "loan"]


def tiny_model_archive(tmp: Path) -> bytes:
    from attacks.testing import build_tiny_text_classifier  # torch: only when a model is built

    folder = build_tiny_text_classifier(tmp / "tiny", TEXTS, LABELS)
    return pack_model_folder(folder, tmp / "tiny.tar.gz").read_bytes()


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def dataset_bytes(n: int = 20, offset: int = 0) -> bytes:
    return jsonl(
        [{"text": TEXTS[i % 4] + f" {i + offset}", "label": LABELS[i % 4]} for i in range(n)]
    )


def tar_with(entries: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
    return buf.getvalue()


def upload(client, auth, body: bytes, kind: str, filename: str):
    return client.post(
        "/v1/artifacts", params={"kind": kind, "filename": filename}, content=body, headers=auth
    )


def new_key(tenant: str | None = None) -> str:
    """An API key of a new tenant (or of `tenant`) in the active backend's database."""
    from app.core.db import session_scope
    from app.tenants.service import create_key

    with session_scope() as db_session:
        return create_key(db_session=db_session, tenant_name=tenant or f"t-{uuid.uuid4().hex[:8]}")
