"""A small HTTP client for the leakgate API, used by the CLI and by pipelines in Python.

from app.client import LeakgateClient
with LeakgateClient("https://leakgate.internal", api_key) as client:
    client.set_policy({"max_auc": 0.6})
    audit = client.wait(client.submit(spec)["id"])
    ok = audit["gate"] == "pass"
"""

from __future__ import annotations

import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from app.audits.enums import FINAL_STATES

CHUNK = 1 << 20


class ApiError(Exception):
    """The server answered with an error; `status` tells usage errors (4xx) from failures."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class UsageError(ValueError):
    """The caller's input cannot be sent as it is (a folder that is not a model, say)."""


# What a model needs, by file name; everything else in a training output folder (checkpoints,
# optimizer and scheduler state, `training_args.bin`, RNG state, logs) is left behind.
MODEL_FILES = {
    "config.json",
    "generation_config.json",
    "adapter_config.json",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "chat_template.jinja",
}


def _is_model_file(name: str) -> bool:
    return name in MODEL_FILES or name.endswith(".safetensors")


def select_model_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """The files of `folder`'s top level that a model needs, and everything left out.

    Only the top level counts: `save_pretrained` and `Trainer` write the final model there and
    checkpoints in sub-folders (`checkpoint-500/`), which are never sent.
    """
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder: pass a save_pretrained model folder")
    has_config = (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()
    if not has_config:
        raise UsageError(
            f"{folder} has no config.json (nor adapter_config.json): pass the folder that "
            "save_pretrained (or Trainer.save_model) wrote, not a dataset or a checkpoint file"
        )
    kept, left_out = [], []
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.is_symlink() and _is_model_file(path.name):
            kept.append(path)
        else:
            left_out.append(path)
    if not any(p.name.endswith(".safetensors") for p in kept):
        pickled = [p.name for p in left_out if p.suffix in {".bin", ".pt", ".pth", ".ckpt"}]
        hint = f" (found pickled {', '.join(pickled)})" if pickled else ""
        raise UsageError(
            f"{folder} has no .safetensors weights{hint}: re-save the model with "
            "save_pretrained(folder, safe_serialization=True)"
        )
    return kept, left_out


def pack_model_folder(folder: Path, dest: Path) -> Path:
    """Archive the model files of a save_pretrained or Trainer output folder (top level only)."""
    kept, _ = select_model_files(folder)
    with tarfile.open(dest, "w:gz") as tar:
        for path in kept:
            tar.add(path, arcname=path.name)
    return dest


class LeakgateClient:
    def __init__(self, server: str, api_key: str, *, timeout: float = 60.0) -> None:
        self.http = httpx.Client(
            base_url=server.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> LeakgateClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _checked(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, str(detail))
        return response

    def _json(self, response: httpx.Response) -> Any:
        response = self._checked(response)
        return None if response.status_code == 204 else response.json()

    def upload(
        self,
        path: Path,
        kind: str,
        *,
        filename: str | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Stream a file as the request body."""

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    if on_bytes:
                        on_bytes(len(chunk))
                    yield chunk

        response = self.http.post(
            "/v1/artifacts",
            params={"kind": kind, "filename": filename or path.name},
            content=chunks(),
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(path.stat().st_size),
            },
            timeout=None,
        )
        return self._json(response)

    def upload_model(self, folder: Path, **kwargs: Any) -> dict[str, Any]:
        """Upload the model files of a folder; `left_out` names what was not sent."""
        _, left_out = select_model_files(folder)
        with tempfile.TemporaryDirectory() as tmp:
            archive = pack_model_folder(folder, Path(tmp) / f"{folder.name or 'model'}.tar.gz")
            uploaded = self.upload(archive, "model", **kwargs)
        return uploaded | {"left_out": [p.name for p in left_out]}

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._json(self.http.post("/v1/audits", json=spec))

    def audit(self, audit_id: str) -> dict[str, Any]:
        return self._json(self.http.get(f"/v1/audits/{audit_id}"))

    def audits(
        self, *, limit: int = 50, offset: int = 0, filters: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """One page of the tenant's audits, newest first (filters: model_name, state, ...)."""
        params: dict[str, Any] = {"limit": limit, "offset": offset, **(filters or {})}
        return self._json(self.http.get("/v1/audits", params=params))

    def artifacts(self, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """One page of the tenant's artifacts, newest first: {items, total, limit, offset}."""
        return self._json(self.http.get("/v1/artifacts", params={"limit": limit, "offset": offset}))

    def report(self, audit_id: str) -> dict[str, Any]:
        """The stored leakage report (JSON)."""
        return self._json(self.http.get(f"/v1/audits/{audit_id}/report"))

    def rendered_report(self, audit_id: str, format: str) -> str:
        """The report with its gate as `md`, `html` or `junit` (XML), rendered by the server."""
        response = self.http.get(f"/v1/audits/{audit_id}/report", params={"format": format})
        return self._checked(response).text

    def deliveries(self, audit_id: str) -> list[dict[str, Any]]:
        """Every webhook delivery attempt of the audit."""
        return self._json(self.http.get(f"/v1/audits/{audit_id}/deliveries"))

    @staticmethod
    def _policy_path(model_name: str | None) -> str:
        return "/v1/policies/default" if model_name is None else f"/v1/policies/models/{model_name}"

    def policies(self) -> list[dict[str, Any]]:
        return self._json(self.http.get("/v1/policies"))

    def effective_policy(self, model_name: str) -> dict[str, Any]:
        """The policy an audit of `model_name` submitted now would be gated by."""
        return self._json(
            self.http.get("/v1/policies/effective", params={"model_name": model_name})
        )

    def set_policy(self, rules: dict[str, Any], *, model_name: str | None = None) -> dict[str, Any]:
        """Set the tenant default (no `model_name`) or one model's policy; replaces it whole."""
        return self._json(self.http.put(self._policy_path(model_name), json=rules))

    def delete_policy(self, *, model_name: str | None = None) -> None:
        self._json(self.http.delete(self._policy_path(model_name)))

    def create_canary_set(self, body: dict[str, Any]) -> dict[str, Any]:
        """A new canary set and the records to mix into training (secrets shown only here)."""
        return self._json(self.http.post("/v1/canary-sets", json=body))

    def create_split(self, body: dict[str, Any]) -> dict[str, Any]:
        """A new audit split of a candidate dataset: the service's coin decides membership."""
        return self._json(self.http.post("/v1/audit-splits", json=body))

    def split(self, split_id: str) -> dict[str, Any]:
        return self._json(self.http.get(f"/v1/audit-splits/{split_id}"))

    def split_records(self, split_id: str, side: str = "members") -> bytes:
        """One side of a split as JSONL bytes: `members` is what the pipeline trains on."""
        response = self.http.get(f"/v1/audit-splits/{split_id}/{side}.jsonl")
        return self._checked(response).content

    def rotate_webhook_secret(self) -> str:
        """A new webhook signing secret (the old one stops working); shown only now."""
        return self._json(self.http.post("/v1/webhook-secret"))["secret"]

    def cancel(self, audit_id: str) -> dict[str, Any]:
        return self._json(self.http.post(f"/v1/audits/{audit_id}/cancel"))

    def wait(
        self,
        audit_id: str,
        *,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        on_retry: Callable[[Exception, float], None] | None = None,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
        max_backoff_s: float = 30.0,
    ) -> dict[str, Any]:
        """Poll until the audit ends; returns its final state.

        The audit lives on the server, so a lost connection, a read timeout or a 5xx (a server
        restarting behind a proxy) is waited out with exponential backoff until the audit ends
        or `timeout_s` passes; a 4xx (unknown audit, revoked key) is final and raised.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        delay = poll_s
        while True:
            try:
                audit = self.audit(audit_id)
            except (httpx.TransportError, ApiError) as exc:
                if isinstance(exc, ApiError) and exc.status < 500:
                    raise
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise TimeoutError(
                        f"audit {audit_id}: server unreachable until the timeout ({exc})"
                    ) from exc
                if on_retry:
                    on_retry(exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, max_backoff_s)
                continue
            delay = poll_s
            if on_update:
                on_update(audit)
            if audit["state"] in FINAL_STATES:
                return audit
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"audit {audit_id} still {audit['state']} after {timeout_s} s")
            time.sleep(poll_s)
