"""Tests that the bundled example builds a loadable, pickle-free model that memorises members."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from demo import INTENTS, ExampleFiles, build_example, make_intent_records
from demo.intent import read_jsonl, train_intent_classifier

pytestmark = pytest.mark.slow

N_MEMBERS = 150
N_NON_MEMBERS = 150
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> ExampleFiles:
    """Build one small example for the whole module; training is the slow part."""
    dest = tmp_path_factory.mktemp("example")
    return build_example(dest, seed=0, n_members=N_MEMBERS, n_non_members=N_NON_MEMBERS, epochs=25)


def _load(model_dir: Path):
    """Load the way the audit workers do: local files only, safetensors only."""
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, local_files_only=True, use_safetensors=True
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    return model.eval(), tokenizer


def _losses(model_dir: Path, records: list[dict]) -> torch.Tensor:
    """Per-record cross-entropy against each record's own label."""
    model, tokenizer = _load(model_dir)
    batch = tokenizer([r["text"] for r in records], padding=True, return_tensors="pt")
    targets = torch.tensor([model.config.label2id[r["label"]] for r in records])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return torch.nn.functional.cross_entropy(logits, targets, reduction="none")


def test_records_are_deterministic_diverse_and_noisy_as_asked() -> None:
    a = make_intent_records(400, seed=7, label_noise=0.25, id_prefix="x")
    b = make_intent_records(400, seed=7, label_noise=0.25, id_prefix="x")
    clean = make_intent_records(400, seed=7)
    assert a == b
    assert make_intent_records(400, seed=8) != clean
    assert all(set(r) == {"id", "text", "label"} for r in a)
    assert all(r["label"] in INTENTS for r in a)
    assert len({r["id"] for r in a}) == 400 and a[0]["id"].startswith("x")
    assert len({r["text"] for r in a}) >= 390
    assert {r["label"] for r in clean} == set(INTENTS)
    # Same texts with or without noise; exactly the asked share of labels flipped.
    assert [r["text"] for r in a] == [r["text"] for r in clean]
    flipped = sum(x["label"] != y["label"] for x, y in zip(a, clean, strict=True))
    assert flipped == 100


def test_example_folder_has_safetensors_files_and_no_pickles(example: ExampleFiles) -> None:
    names = {p.name for p in example.model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    every_file = [p for p in example.model_dir.parent.rglob("*") if p.is_file()]
    assert not [p for p in every_file if p.suffix in PICKLE_SUFFIXES]


def test_member_and_non_member_files_are_disjoint_records(example: ExampleFiles) -> None:
    members, non_members = read_jsonl(example.members), read_jsonl(example.non_members)
    assert len(members) == N_MEMBERS and len(non_members) == N_NON_MEMBERS
    for record in members + non_members:
        assert set(record) == {"id", "text", "label"} and record["label"] in INTENTS
    assert not {r["id"] for r in members} & {r["id"] for r in non_members}
    assert not {r["text"] for r in members} & {r["text"] for r in non_members}


def test_example_loads_offline_with_all_intents(example: ExampleFiles) -> None:
    model, tokenizer = _load(example.model_dir)
    assert model.config.num_labels == len(INTENTS)
    assert [model.config.id2label[i] for i in range(len(INTENTS))] == INTENTS
    text = read_jsonl(example.non_members)[0]["text"]
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    # Non-member words are in the vocabulary, so they are not all [UNK].
    assert sum(i == tokenizer.unk_token_id for i in ids[1:-1]) == 0


def test_members_have_clearly_lower_loss(example: ExampleFiles) -> None:
    member_loss = _losses(example.model_dir, read_jsonl(example.members))
    non_member_loss = _losses(example.model_dir, read_jsonl(example.non_members))
    assert member_loss.mean() < 0.5 * non_member_loss.mean()
    assert member_loss.median() < non_member_loss.median()


def test_labels_cover_all_intents_even_when_records_do_not(tmp_path: Path) -> None:
    records = [r for r in make_intent_records(40, seed=1) if r["label"] in INTENTS[:2]]
    calls: list[tuple[int, int]] = []
    info = train_intent_classifier(
        tmp_path, records, epochs=2, hidden_size=16, layers=1, progress=lambda *a: calls.append(a)
    )
    assert set(info) >= {"train_accuracy", "seconds"}
    assert calls == [(1, 2), (2, 2)]
    model, _ = _load(tmp_path)
    assert model.config.num_labels == len(INTENTS)


def test_unknown_label_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown intent"):
        train_intent_classifier(tmp_path, [{"id": "a", "text": "hi", "label": "nope"}])
