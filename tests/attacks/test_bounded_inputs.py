"""The attack library under hostile inputs: weights that do not fit, huge records, deep JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from attacks.bounded_json import JsonTooDeep, loads_bounded, nesting_depth
from attacks.data import DatasetError, read_records
from attacks.targets.causal_lm import CausalLM
from attacks.targets.loading import WeightsMismatch
from attacks.targets.text_classifier import TextClassifier
from attacks.testing import build_tiny_causal_lm, build_tiny_text_classifier

TEXTS = ["check my balance", "send money to bob", "i lost my card"]
LABELS = ["balance", "transfer", "card"]


def test_a_classifier_whose_weights_are_one_stray_tensor_does_not_load(tmp_path):
    folder = build_tiny_text_classifier(tmp_path / "m", TEXTS, LABELS)
    save_file({"w": torch.zeros(4)}, str(folder / "model.safetensors"))
    with pytest.raises(WeightsMismatch) as caught:
        TextClassifier.load(folder, device="cpu")
    message = str(caught.value)
    assert "tensor(s) missing: bert.embeddings.LayerNorm.bias" in message
    assert "1 tensor(s) unexpected: w" in message


def test_a_gpt2_config_over_bert_weights_does_not_load(tmp_path):
    bert = build_tiny_text_classifier(tmp_path / "bert", TEXTS, LABELS)
    gpt2 = build_tiny_causal_lm(tmp_path / "gpt2", TEXTS)
    shutil.copy(gpt2 / "config.json", bert / "config.json")
    with pytest.raises(WeightsMismatch, match=r"missing: .*transformer\.h\.0\.attn"):
        CausalLM.load(bert, device="cpu")


def test_matching_weights_still_load(tmp_path):
    classifier = TextClassifier.load(
        build_tiny_text_classifier(tmp_path / "c", TEXTS, LABELS), device="cpu"
    )
    assert classifier.num_labels == 3
    lm = CausalLM.load(build_tiny_causal_lm(tmp_path / "l", TEXTS), device="cpu")
    assert lm.n_parameters > 0


def test_a_huge_record_scores_like_its_beginning(tmp_path):
    """Cutting before tokenising changes nothing the model sees at max_length tokens."""
    classifier = TextClassifier.load(
        build_tiny_text_classifier(tmp_path / "c", TEXTS, LABELS), device="cpu"
    )
    huge = "send money to bob " * 100_000
    start = " ".join(huge.split()[:200])
    logits = classifier.logits([huge, start], max_length=32)
    np.testing.assert_allclose(logits[0], logits[1], rtol=1e-5)

    lm = CausalLM.load(build_tiny_causal_lm(tmp_path / "l", TEXTS), device="cpu")
    stats = lm.token_statistics([huge, start], max_length=32)
    assert stats.n_bytes[0] == stats.n_bytes[1] and stats.zlib_bytes[0] == stats.zlib_bytes[1]
    np.testing.assert_allclose(stats.log_prob[0], stats.log_prob[1], rtol=1e-5)


MEASURE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from attacks.targets.text_classifier import TextClassifier
    from attacks.testing import build_tiny_text_classifier

    def mib(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024

    texts = ["check my balance", "send money to bob", "i lost my card"]
    folder = build_tiny_text_classifier(Path(sys.argv[1]), texts, ["a", "b", "c"])
    model = TextClassifier.load(folder, device="cpu")
    model.logits(texts)
    record = "send money to bob " * (20 * 1024**2 // 18)
    before = mib("VmRSS")
    model.logits([record], max_length=128)
    print(before, mib("VmHWM"))
    """
)


def test_a_20_mb_record_does_not_grow_the_worker(tmp_path):
    """Fast tokenizers pre-tokenise the whole text before truncating: 50 MB took a worker
    from 0.4 to 5.3 GB. Measured in a fresh process, so earlier tests' peaks do not hide it."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    before, peak = map(int, done.stdout.split()[-2:])
    print(f"20 MB record: RSS {before} MiB before, peak {peak} MiB")
    assert peak - before < 100


def test_deep_json_is_refused_before_parsing():
    deep = "[" * 10_000 + "]" * 10_000
    assert nesting_depth(deep) == 10_000
    assert nesting_depth('{"a": "[[[[{{", "b": [1, {"c": []}]}') == 4
    with pytest.raises(JsonTooDeep, match="nested 10000 levels deep"):
        loads_bounded(deep)
    assert loads_bounded('{"a": [[1]]}') == {"a": [[1]]}


def test_jsonl_limits_name_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [json.dumps({"text": "hi", "label": "a"}), '{"text": ' + "[" * 500 + "]" * 500 + "}"]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="line 2: JSON nested 501 levels deep"):
        read_records(path)
    path.write_text(json.dumps({"text": "x" * 11, "label": "a"}) + "\n")
    with pytest.raises(DatasetError, match='line 1: "text" has 11 characters'):
        read_records(path, max_text_chars=10)
    assert len(read_records(path, max_text_chars=11)) == 1
