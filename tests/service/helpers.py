"""Builders for upload bodies used by the service tests."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from app.client import pack_model_folder
from attacks.testing import build_tiny_text_classifier

TEXTS = ["check my balance", "send money to bob", "i lost my card", "what is the loan rate"]
LABELS = ["balance", "transfer", "card", "loan"]


def tiny_model_archive(tmp: Path) -> bytes:
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


def dashboard_post(client, url: str, data: dict | None = None, **kwargs):
    """POST a dashboard form as a browser would: with the page's CSRF token in the form."""
    if "leakgate_csrf" not in client.cookies:
        client.cookies.delete("leakgate_key")  # the login page renders only when logged out
        assert client.get("/dashboard/login").status_code == 200
    token = client.cookies["leakgate_csrf"]
    return client.post(url, data={**(data or {}), "csrf_token": token}, **kwargs)
