"""What the worker would refuse is refused at submission: a 422 that names the problem, and no
audit row (so nothing queued) for the tenant. Each case used to fail in the worker after the
scoring: the canary vocabulary at 96 %, the same file as members and non-members at the
verdict, offline references on a one-record population, reference models of other classes."""

from __future__ import annotations

import pytest

from tests.utils.factories import (
    DIGITS_TEXT,
    LABELS,
    dataset_bytes,
    jsonl,
    tiny_model_archive,
    upload,
)

PIN_SET = {"template": "pin", "count": 6, "seed": 3, "labels": LABELS}


@pytest.fixture(scope="module")
def bodies(tmp_path_factory) -> dict[str, bytes]:
    """Tiny classifiers: digit tokens (PIN canaries fit), none, and two classes only."""
    root = tmp_path_factory.mktemp("bodies")
    return {
        "digits": tiny_model_archive(root / "digits", vocab_texts=(DIGITS_TEXT,)),
        "words": tiny_model_archive(root / "words"),
        "two_classes": tiny_model_archive(root / "two", labels=LABELS[:2]),
    }


def ids_of(client, auth, **uploads: tuple[bytes, str, str]) -> dict[str, str]:
    ids = {}
    for field, (body, kind, name) in uploads.items():
        response = upload(client, auth, body, kind, name)
        assert response.status_code == 201, response.text
        ids[field] = response.json()["id"]
    return ids


def post(client, auth, **spec):
    return client.post("/v1/audits", json={"model": {"name": "m"}, **spec}, headers=auth)


def refused(response, *phrases: str) -> None:
    assert response.status_code == 422, response.text
    for phrase in phrases:
        assert phrase in response.json()["detail"], response.json()["detail"]


def queued(client, auth) -> int:
    return client.get("/v1/audits", headers=auth).json()["total"]


def test_canary_alphabet_must_be_tokens_of_the_model(client, auth, bodies):
    ids = ids_of(
        client,
        auth,
        digits=(bodies["digits"], "model", "digits.tar.gz"),
        words=(bodies["words"], "model", "words.tar.gz"),
        members=(dataset_bytes(20), "dataset", "m.jsonl"),
        non_members=(dataset_bytes(20, offset=100), "dataset", "n.jsonl"),
    )
    data = {"members": ids["members"], "non_members": ids["non_members"]}
    pin = client.post("/v1/canary-sets", json=PIN_SET, headers=auth).json()["id"]
    letters = {**PIN_SET, "alphabet": "qz"}
    qz = client.post("/v1/canary-sets", json=letters, headers=auth).json()["id"]

    refused(
        post(client, auth, **data, target=ids["words"], canary_set=pin),
        "canary_set:",
        "vocabulary must hold every character of '0123456789'",
    )
    refused(
        post(client, auth, **data, target=ids["digits"], canary_set=qz),
        "canary_set:",
        "'qz'",
    )
    assert queued(client, auth) == 0
    accepted = post(client, auth, **data, target=ids["digits"], canary_set=pin)
    assert accepted.status_code == 202, accepted.text
    assert queued(client, auth) == 1


def test_causal_lm_canaries_are_checked_against_its_tokenizer(client, auth, tmp_path):
    from app.client import pack_model_folder
    from attacks.testing import build_tiny_causal_lm

    texts = ["the code is 1 2", "a b c"]
    lm = pack_model_folder(build_tiny_causal_lm(tmp_path / "lm", texts), tmp_path / "lm.tgz")
    ids = ids_of(
        client,
        auth,
        target=(lm.read_bytes(), "model", "lm.tar.gz"),
        members=(jsonl([{"text": "the code is 1 2"}]), "dataset", "m.jsonl"),
        non_members=(jsonl([{"text": "a b c"}]), "dataset", "n.jsonl"),
    )
    body = {"task": "causal-lm", "template": "pin", "count": 4, "seed": 1}
    pin = client.post("/v1/canary-sets", json=body, headers=auth).json()["id"]
    refused(
        post(client, auth, **ids, task="causal-lm", canary_set=pin),
        "canary_set:",
        "unknown token",
    )
    assert queued(client, auth) == 0


def test_members_and_non_members_must_be_different_data(client, auth, bodies):
    records = dataset_bytes(20)
    ids = ids_of(
        client,
        auth,
        target=(bodies["words"], "model", "t.tar.gz"),
        members=(records, "dataset", "members.jsonl"),
        copy=(records, "dataset", "copy.jsonl"),
    )
    refused(
        post(
            client, auth, target=ids["target"], members=ids["members"], non_members=ids["members"]
        ),
        "same artifact",
    )
    refused(
        post(client, auth, target=ids["target"], members=ids["members"], non_members=ids["copy"]),
        "identical content",
    )
    assert queued(client, auth) == 0


def test_offline_references_need_a_population_to_halve(client, auth, bodies):
    ids = ids_of(
        client,
        auth,
        target=(bodies["words"], "model", "t.tar.gz"),
        members=(dataset_bytes(20), "dataset", "m.jsonl"),
        non_members=(dataset_bytes(20, offset=100), "dataset", "n.jsonl"),
        one=(dataset_bytes(1, offset=200), "dataset", "one.jsonl"),
        two=(dataset_bytes(2, offset=300), "dataset", "two.jsonl"),
    )
    spec = {
        "target": ids["target"],
        "members": ids["members"],
        "non_members": ids["non_members"],
        "attacks": ["lira-offline"],
        "references": {"mode": "offline", "count": 2},
    }
    refused(post(client, auth, **spec, population=ids["one"]), "population:", "at least 2")
    assert queued(client, auth) == 0
    # Online references train on every audited record too: one population record is enough.
    online = {**spec, "attacks": ["lira"], "references": {"mode": "online", "count": 2}}
    assert post(client, auth, **online, population=ids["one"]).status_code == 202
    assert post(client, auth, **spec, population=ids["two"]).status_code == 202


def test_uploaded_reference_models_need_the_targets_classes(client, auth, bodies):
    ids = ids_of(
        client,
        auth,
        target=(bodies["words"], "model", "t.tar.gz"),
        reference=(bodies["two_classes"], "model", "r.tar.gz"),
        members=(dataset_bytes(20), "dataset", "m.jsonl"),
        non_members=(dataset_bytes(20, offset=100), "dataset", "n.jsonl"),
        population=(dataset_bytes(20, offset=200), "dataset", "p.jsonl"),
    )
    spec = {k: ids[k] for k in ("target", "members", "non_members", "population")}
    uploaded = [{"model": ids["reference"], "trained_on": []}]
    refused(
        post(client, auth, **spec, attacks=["lira-offline"], references={"uploaded": uploaded}),
        "references.uploaded[0].model",
        "2 classes, the target 4",
    )
    assert queued(client, auth) == 0


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> dict[str, bytes]:
    """A LoRA adapter trained over the tiny classifier, its base, and a base it does not fit."""
    from app.client import pack_model_folder
    from attacks.testing import build_tiny_text_classifier, train_tiny_lora_adapter
    from tests.utils.factories import TEXTS

    root = tmp_path_factory.mktemp("adapter")
    base = build_tiny_text_classifier(root / "base", TEXTS, LABELS)
    narrow = build_tiny_text_classifier(root / "narrow", TEXTS, LABELS, hidden_size=16)
    texts = [TEXTS[i % 4] + f" {i}" for i in range(8)]
    folder = train_tiny_lora_adapter(
        base, root / "lora", texts, [LABELS[i % 4] for i in range(8)], steps=3
    )
    packed = {}
    for name, path in (("base", base), ("narrow", narrow), ("adapter", folder)):
        packed[name] = pack_model_folder(path, root / f"{name}.tar.gz").read_bytes()
    packed["folder"] = str(folder).encode()
    return packed


def test_an_adapter_audits_over_the_base_it_was_trained_on(client, auth, adapter):
    ids = ids_of(
        client,
        auth,
        target=(adapter["adapter"], "model", "lora.tar.gz"),
        base=(adapter["base"], "model", "base.tar.gz"),
        narrow=(adapter["narrow"], "model", "narrow.tar.gz"),
        members=(dataset_bytes(20), "dataset", "m.jsonl"),
        non_members=(dataset_bytes(20, offset=100), "dataset", "n.jsonl"),
    )
    meta = client.get(f"/v1/artifacts/{ids['target']}", headers=auth).json()["meta"]
    assert meta["adapter"] is True and meta["peft_type"] == "LORA" and meta["r"] == 4
    data = {"target": ids["target"], "members": ids["members"], "non_members": ids["non_members"]}
    refused(post(client, auth, **data), "PEFT adapter", "base_model")
    refused(
        post(client, auth, **data, base_model=ids["narrow"]),
        "base_model:",
        "not trained on this base model",
        "shapes do not fit",
    )
    refused(
        post(client, auth, **{**data, "target": ids["base"]}, base_model=ids["base"]),
        "not a PEFT adapter",
    )
    refused(post(client, auth, **data, base_model=ids["target"]), "base_model:")
    refused(post(client, auth, **data, base_model=ids["base"], task="causal-lm"), "SEQ_CLS")
    assert queued(client, auth) == 0
    accepted = post(client, auth, **data, base_model=ids["base"])
    assert accepted.status_code == 202, accepted.text
    assert queued(client, auth) == 1


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"peft_type": "PREFIX_TUNING"}, "peft_type 'PREFIX_TUNING' is not supported"),
        ({"r": 0}, "LoRA rank must be an integer"),
        ({"target_modules": []}, "target_modules needs 1 to"),
        ({"target_modules": "("}, "not a valid pattern"),
        ({"auto_mapping": {"base_model_class": "Evil"}}, "custom code"),
    ],
)
def test_adapter_configs_are_bounded_and_sane(client, auth, adapter, change, phrase):
    import json
    from pathlib import Path

    from tests.utils.factories import tar_with

    folder = Path(adapter["folder"].decode())
    config = json.loads((folder / "adapter_config.json").read_text()) | change
    body = tar_with(
        {
            "adapter_config.json": json.dumps(config).encode(),
            "adapter_model.safetensors": (folder / "adapter_model.safetensors").read_bytes(),
        }
    )
    refused(upload(client, auth, body, "model", "lora.tar.gz"), phrase)
