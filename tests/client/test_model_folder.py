"""What the client sends of a model folder: the model, never checkpoints or training state."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from app.client import UsageError, pack_model_folder, select_model_files


def _trainer_output(root: Path) -> Path:
    """The shape `Trainer.save_model` + checkpointing leaves behind (contents are stand-ins)."""
    folder = root / "run"
    (folder / "checkpoint-500").mkdir(parents=True)
    names = ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json")
    for name in names:
        (folder / name).write_text("{}")
    (folder / "model-00001-of-00002.safetensors").write_bytes(b"x")
    (folder / "model-00002-of-00002.safetensors").write_bytes(b"y")
    (folder / "model.safetensors.index.json").write_text("{}")
    (folder / "training_args.bin").write_bytes(b"\x80\x04pickle")
    (folder / "trainer_state.json").write_text("{}")
    (folder / "checkpoint-500" / "optimizer.pt").write_bytes(b"\x80\x04pickle")
    (folder / "checkpoint-500" / "model.safetensors").write_bytes(b"z")
    return folder


def test_trainer_output_keeps_the_model_and_lists_what_it_left(tmp_path):
    folder = _trainer_output(tmp_path)
    kept, left_out = select_model_files(folder)
    assert {p.name for p in kept} == {
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    }
    left = {p.name for p in left_out}
    assert left == {"checkpoint-500", "training_args.bin", "trainer_state.json"}
    with tarfile.open(pack_model_folder(folder, tmp_path / "m.tgz")) as tar:
        names = tar.getnames()
    assert sorted(names) == sorted(p.name for p in kept)


def test_peft_adapter_folder_is_a_model_folder(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"x")
    (tmp_path / "README.md").write_text("card")
    kept, left_out = select_model_files(tmp_path)
    assert [p.name for p in kept] == ["adapter_config.json", "adapter_model.safetensors"]
    assert [p.name for p in left_out] == ["README.md"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"members.jsonl": b"{}"}, "no config.json"),
        ({"config.json": b"{}", "pytorch_model.bin": b"\x80"}, "pickled pytorch_model.bin"),
    ],
)
def test_not_a_model_folder_is_a_usage_error(tmp_path, files, message):
    for name, body in files.items():
        (tmp_path / name).write_bytes(body)
    with pytest.raises(UsageError, match=message):
        select_model_files(tmp_path)


def test_a_file_is_not_a_model_folder(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("{}")
    with pytest.raises(UsageError, match="not a folder"):
        select_model_files(path)
