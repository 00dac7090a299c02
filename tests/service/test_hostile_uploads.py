"""Hostile uploads are refused before they cost the API memory, disk or a stuck connection.

Each test names the attack it stands for (issue 11): a config that asks transformers for a
billion labels, weights that are not the model the config describes, a tar bomb, deep JSON,
huge records and label sets, a full disk, a tenant over its quota, a slow-loris body.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from app.client import pack_model_folder
from attacks.testing import build_tiny_causal_lm, build_tiny_text_classifier
from tests.utils.env import reset_caches
from tests.utils.factories import LABELS, TEXTS, dataset_bytes, jsonl, new_key, tar_with, upload

MiB = 1024**2


def vm_kib(field: str) -> int:
    """VmHWM (peak) or VmRSS of this process, which also runs the in-process API."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/self/status")


def tiny_folder(tmp: Path, name: str = "tiny") -> Path:
    return build_tiny_text_classifier(tmp / name, TEXTS, LABELS)


def archive(folder: Path, dest: Path) -> bytes:
    return pack_model_folder(folder, dest).read_bytes()


def with_config(tmp: Path, name: str, **changes) -> bytes:
    folder = tiny_folder(tmp, name)
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    return archive(folder, tmp / f"{name}.tar.gz")


@pytest.fixture
def limited(activate, monkeypatch):
    """A client whose settings the test sets first through LEAKGATE_* variables."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    def make(**env: str):
        for key, value in env.items():
            monkeypatch.setenv(f"LEAKGATE_{key.upper()}", value)
        reset_caches()
        return TestClient(create_app(run_sweeper=False))

    return make


@pytest.mark.parametrize("num_labels", [1_000_000_000, 2_000_000])
def test_a_config_asking_for_millions_of_labels_is_refused_without_memory(
    client, auth, tmp_path, num_labels
):
    body = with_config(tmp_path, "labels", num_labels=num_labels, id2label=None, label2id=None)
    assert len(body) < 200_000
    rss_before, peak_before = vm_kib("VmRSS"), vm_kib("VmHWM")
    response = upload(client, auth, body, "model", "labels.tar.gz")
    peak_after = vm_kib("VmHWM")
    print(
        f"num_labels={num_labels}: API peak RSS {peak_after / 1024:.0f} MiB "
        f"(before {peak_before / 1024:.0f}, current {rss_before / 1024:.0f})"
    )
    assert response.status_code == 422, response.text
    assert "num_labels" in response.json()["detail"]
    assert "10000" in response.json()["detail"]
    assert (peak_after - max(peak_before, rss_before)) * 1024 < 200 * MiB
    assert client.get("/v1/artifacts", headers=auth).json()["items"] == []


def test_too_many_labels_in_id2label_are_refused(client, auth, tmp_path):
    labels = {str(i): f"l{i}" for i in range(10_001)}
    body = with_config(tmp_path, "many", id2label=labels, label2id=None, num_labels=None)
    response = upload(client, auth, body, "model", "many.tar.gz")
    assert response.status_code == 422, response.text
    assert "id2label has 10001 labels" in response.json()["detail"]


def test_deeply_nested_config_and_jsonl_line_are_422(client, auth, tmp_path):
    folder = tiny_folder(tmp_path, "deep")
    text = (folder / "config.json").read_text().rstrip().removesuffix("}")
    (folder / "config.json").write_text(text + ', "x": ' + "[" * 5000 + "]" * 5000 + "}")
    body = archive(folder, tmp_path / "deep.tar.gz")
    response = upload(client, auth, body, "model", "deep.tar.gz")
    assert response.status_code == 422, response.text
    assert "config.json is nested 5001 levels deep" in response.json()["detail"]

    line = b'{"text": "hi", "label": "card", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    response = upload(client, auth, dataset_bytes(3) + line, "dataset", "deep.jsonl")
    assert response.status_code == 422, response.text
    assert "line 4: JSON nested 100001 levels deep" in response.json()["detail"]


@pytest.mark.slow  # a child process imports torch to build the model
def test_weights_of_one_stray_tensor_are_refused(client, auth, tmp_path):
    folder = tiny_folder(tmp_path)
    save_file({"w": torch.zeros(4)}, str(folder / "model.safetensors"))
    response = upload(client, auth, archive(folder, tmp_path / "f.tar.gz"), "model", "f.tar.gz")
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "do not match the architecture" in detail
    assert "missing 25 tensor(s): bert.embeddings.LayerNorm.bias" in detail
    assert "unexpected 1 tensor(s): w" in detail


@pytest.mark.slow  # a child process imports torch to build the model
def test_a_gpt2_config_over_bert_weights_is_refused(client, auth, tmp_path):
    bert = tiny_folder(tmp_path)
    gpt2 = build_tiny_causal_lm(tmp_path / "gpt2", TEXTS)
    shutil.copy(gpt2 / "config.json", bert / "config.json")
    response = upload(client, auth, archive(bert, tmp_path / "m.tar.gz"), "model", "m.tar.gz")
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "GPT2LMHeadModel: missing" in detail and "transformer.h.0.attn.c_attn.bias" in detail
    assert "unexpected 25 tensor(s): bert.embeddings" in detail


@pytest.mark.slow  # a child process imports torch to build the model
def test_misshaped_weights_and_stray_weight_files_are_refused(client, auth, tmp_path):
    folder = tiny_folder(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["intermediate_size"] = 2 * config["intermediate_size"]
    (folder / "config.json").write_text(json.dumps(config))
    response = upload(client, auth, archive(folder, tmp_path / "s.tar.gz"), "model", "s.tar.gz")
    assert response.status_code == 422, response.text
    assert (
        "with the wrong shape: bert.encoder.layer.0.intermediate.dense.bias [64]"
        in (response.json()["detail"])
    )

    folder = tiny_folder(tmp_path, "stray")
    save_file({"w": torch.zeros(4)}, str(folder / "adapter.safetensors"))
    response = upload(client, auth, archive(folder, tmp_path / "a.tar.gz"), "model", "a.tar.gz")
    assert response.status_code == 422, response.text
    assert "adapter.safetensors would not be loaded" in response.json()["detail"]


@pytest.mark.slow  # a child process imports torch to build the model
def test_matching_causal_lm_and_sharded_weights_are_accepted(client, auth, tmp_path):
    """The check does not refuse real layouts: tied GPT-2 weights, an index with shards."""
    gpt2 = build_tiny_causal_lm(tmp_path / "gpt2", TEXTS)
    response = upload(client, auth, archive(gpt2, tmp_path / "g.tar.gz"), "model", "g.tar.gz")
    assert response.status_code == 201, response.text
    assert response.json()["meta"]["architectures"] == ["GPT2LMHeadModel"]

    from safetensors.torch import load_file

    folder = tiny_folder(tmp_path, "sharded")
    tensors = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    names = sorted(tensors)
    halves = {
        "model-00001-of-00002.safetensors": names[:10],
        "model-00002-of-00002.safetensors": names[10:],
    }
    weight_map = {}
    for file, part in halves.items():
        save_file({n: tensors[n] for n in part}, str(folder / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    response = upload(client, auth, archive(folder, tmp_path / "s.tar.gz"), "model", "s.tar.gz")
    assert response.status_code == 201, response.text
    assert len(response.json()["meta"]["weights"]) == 2


def zeros_tar_gz(dest: Path, model: Path, name: str, size: int) -> bytes:
    """A real model's archive plus a file of `size` zero bytes, streamed (never in memory)."""

    class Zeros(io.RawIOBase):
        def __init__(self) -> None:
            self.left = size

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            n = min(len(buffer), self.left)
            buffer[:n] = bytes(n)
            self.left -= n
            return n

    with tarfile.open(dest, "w:gz", compresslevel=6) as tar:
        for path in sorted(model.iterdir()):
            tar.add(path, arcname=path.name)
        info = tarfile.TarInfo(name)
        info.size = size
        tar.addfile(info, io.BufferedReader(Zeros(), 1 << 20))
    return dest.read_bytes()


def test_a_highly_compressed_readme_is_refused_while_unpacking(client, auth, tmp_path):
    body = zeros_tar_gz(tmp_path / "bomb.tar.gz", tiny_folder(tmp_path), "README.md", 100 * MiB)
    response = upload(client, auth, body, "model", "bomb.tar.gz")
    assert response.status_code == 422, response.text
    assert "'README.md' unpacks to more than 67108864 bytes" in response.json()["detail"]


@pytest.mark.slow
def test_the_3_5_gib_tar_bomb_is_refused_and_nothing_is_kept(client, auth, tmp_path):
    from app.core.config import get_settings

    model = tiny_folder(tmp_path)
    body = zeros_tar_gz(tmp_path / "bomb.tar.gz", model, "README", int(3.5 * 1024**3))
    print(f"tar bomb: {len(body) / MiB:.2f} MiB compressed")
    tmp = Path(get_settings().storage_dir) / "tmp"
    before = set(tmp.iterdir()) if tmp.exists() else set()  # other tests share the backend
    response = upload(client, auth, body, "model", "bomb.tar.gz")
    assert response.status_code == 422, response.text
    assert "'README' unpacks to more than" in response.json()["detail"]
    assert set(tmp.iterdir()) - before == set()


def test_records_longer_than_the_limit_and_too_many_labels_are_refused(limited):
    with limited(max_record_chars="1000", max_labels="3") as client:
        auth = {"Authorization": f"Bearer {new_key()}"}
        body = dataset_bytes(3) + jsonl([{"text": "x" * 1001, "label": "card"}])
        response = upload(client, auth, body, "dataset", "long.jsonl")
        assert response.status_code == 422, response.text
        assert "line 4" in response.json()["detail"]
        assert (
            '"text" has 1001 characters, more than the limit of 1000' in (response.json()["detail"])
        )
        response = upload(client, auth, dataset_bytes(8), "dataset", "labels.jsonl")
        assert response.status_code == 422, response.text
        assert "4 distinct labels, more than the limit of 3" in response.json()["detail"]


def test_a_50_mb_record_is_refused_at_upload(client, auth):
    body = jsonl([{"text": "word " * (10 * MiB), "label": "card"}])
    rss_before = vm_kib("VmRSS")
    response = upload(client, auth, body, "dataset", "huge.jsonl")
    print(f"50 MB record: API peak RSS {vm_kib('VmHWM') >> 10} MiB (before {rss_before >> 10})")
    assert response.status_code == 422, response.text
    assert "line 1: the line has 52428830 characters" in response.json()["detail"]
    assert "at most 200000" in response.json()["detail"]
    body = jsonl([{"text": "word " * 50_000, "label": "card"}])
    response = upload(client, auth, body, "dataset", "long.jsonl")
    assert response.status_code == 422, response.text
    assert (
        '"text" has 250000 characters, more than the limit of 200000' in (response.json()["detail"])
    )


def test_uploads_that_would_fill_the_disk_are_507(limited, tmp_path):
    model = archive(tiny_folder(tmp_path), tmp_path / "m.tar.gz")
    with limited(storage_reserve_bytes=str(2**62)) as client:
        auth = {"Authorization": f"Bearer {new_key()}"}
        for body, kind, name in (
            (dataset_bytes(5), "dataset", "d.jsonl"),
            (model, "model", "m.tgz"),
        ):
            response = upload(client, auth, body, kind, name)
            assert response.status_code == 507, response.text
            assert "insufficient storage" in response.json()["detail"]
            assert "LEAKGATE_STORAGE_RESERVE_BYTES" in response.json()["detail"]
        assert client.get("/v1/artifacts", headers=auth).json()["items"] == []


def test_unpacking_checks_free_space_before_writing(tmp_path):
    from app.artifacts import archives
    from app.artifacts.errors import StorageFull

    bomb = tmp_path / "b.tar.gz"
    bomb.write_bytes(tar_with({"config.json": b"{}", "model.safetensors": b"x" * 1000}))
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(StorageFull, match="1002 bytes are needed"):
        archives.extract(
            bomb,
            tmp_path / "out",
            max_entries=10,
            max_unpacked_bytes=10_000,
            reserve_bytes=free - 500,
        )
    assert not any((tmp_path / "out").iterdir())


def test_a_tenant_over_its_quota_gets_413_naming_quota_and_usage(limited):
    first, second = dataset_bytes(20), dataset_bytes(20, offset=50)
    quota = len(first) + len(second) // 2
    with limited(tenant_quota_bytes=str(quota)) as client:
        auth = {"Authorization": f"Bearer {new_key()}"}
        assert upload(client, auth, first, "dataset", "a.jsonl").status_code == 201
        # The same bytes again are stored once and cost nothing more.
        assert upload(client, auth, first, "dataset", "again.jsonl").status_code == 201
        response = upload(client, auth, second, "dataset", "b.jsonl")
        assert response.status_code == 413, response.text
        detail = response.json()["detail"]
        assert f"storage quota: {len(first)} of {quota} bytes are used" in detail
        listed = client.get("/v1/artifacts", headers=auth).json()["items"]
        assert listed[0]["filename"] == "again.jsonl"
        other = {"Authorization": f"Bearer {new_key()}"}
        assert upload(client, other, second, "dataset", "b.jsonl").status_code == 201


@pytest.mark.slow
def test_a_config_too_big_to_build_exhausts_only_the_budgeted_child(limited, tmp_path):
    """Labels are not the only size: a million layers pass every cheap check and are caught
    by the child's memory limit, while the API's own peak memory does not move. The limit is
    768 MiB here (BERT-base inspects within it), so memory, not the timeout, is what fires."""
    body = with_config(tmp_path, "layers", num_hidden_layers=1_000_000)
    with limited(inspect_memory_bytes=str(768 * 1024**2), inspect_timeout_s="60") as client:
        auth = {"Authorization": f"Bearer {new_key()}"}
        rss_before, peak_before = vm_kib("VmRSS"), vm_kib("VmHWM")
        response = upload(client, auth, body, "model", "layers.tar.gz")
        peak_after = vm_kib("VmHWM")
        print(f"million layers: API peak RSS {peak_after / 1024:.0f} MiB")
        assert response.status_code == 422, response.text
        assert "LEAKGATE_INSPECT_MEMORY_BYTES" in response.json()["detail"]
        assert (peak_after - max(peak_before, rss_before)) * 1024 < 200 * MiB


def test_a_stalled_upload_body_is_cut_off_with_408(activate, monkeypatch):
    """Slow loris: headers promise a body that never comes. A real server and socket, since
    the test client sends bodies whole."""
    import socket
    import threading

    import uvicorn

    from app.main import create_app

    monkeypatch.setenv("LEAKGATE_UPLOAD_IDLE_TIMEOUT_S", "1")
    reset_caches()
    key = new_key()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(run_sweeper=False), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
            conn.sendall(
                b"POST /v1/artifacts?kind=dataset&filename=d.jsonl HTTP/1.1\r\n"
                b"Host: test\r\nAuthorization: Bearer " + key.encode() + b"\r\n"
                b"Content-Length: 100000\r\n\r\n" + b'{"text": "slow'
            )
            answer = conn.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 408"), answer
        assert "upload stalled: no data for 1 s after 14 bytes" in answer
    finally:
        server.should_exit = True
        thread.join(10)
