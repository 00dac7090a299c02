"""A PEFT/LoRA adapter audits over its base model end to end: `leakgate audit --model ADAPTER
--base-model BASE --wait` against a real `leakgate serve` (SQLite, embedded broker), the worker
merging the adapter into the base with peft. Mismatches are refused before the worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from app.cli.demo import wait_until_ready
from app.cli.summary import EXIT_USAGE
from tests.utils.factories import LABELS, TEXTS, jsonl
from tests.utils.processes import free_port, leakgate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("peft-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKGATE_")}
    env.update({"LEAKGATE_HOME": str(home), "LEAKGATE_BOOTSTRAP_SAMPLES": "200"})
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", proc)
        key = leakgate("keys", "create", "--tenant", "peft", env=env).stdout.strip()
        yield {**env, "LEAKGATE_SERVER": f"http://127.0.0.1:{port}", "LEAKGATE_API_KEY": key}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Base classifier folder, a LoRA adapter trained over it on the members, the data."""
    from attacks.testing import build_tiny_text_classifier, train_tiny_lora_adapter

    root = tmp_path_factory.mktemp("peft")
    members = [{"text": TEXTS[i % 4] + f" {i}", "label": LABELS[i % 4]} for i in range(24)]
    others = [{"text": TEXTS[i % 4] + f" {i + 100}", "label": LABELS[i % 4]} for i in range(24)]
    words = [r["text"] for r in members + others]
    base = build_tiny_text_classifier(root / "base", words, LABELS)
    other_base = build_tiny_text_classifier(root / "other", words, LABELS, hidden_size=16)
    adapter = train_tiny_lora_adapter(
        base,
        root / "adapter",
        [r["text"] for r in members],
        [r["label"] for r in members],
        steps=30,
    )
    (root / "members.jsonl").write_bytes(jsonl(members))
    (root / "non_members.jsonl").write_bytes(jsonl(others))
    return {
        "base": base,
        "other_base": other_base,
        "adapter": adapter,
        "members": root / "members.jsonl",
        "non_members": root / "non_members.jsonl",
    }


def test_cli_audits_a_lora_adapter_over_its_base_model(served, folders):
    args = ["audit", "--model", str(folders["adapter"]), "--base-model", str(folders["base"])]
    args += ["--members", str(folders["members"]), "--non-members", str(folders["non_members"])]
    done = leakgate(*args, "--wait", "--json", "--name", "lora-intents", env=served, timeout=600)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    audit = json.loads(leakgate("status", result["id"], env=served).stdout)
    assert audit["state"] == "succeeded", (audit, done.stderr)
    report = json.loads(leakgate("report", result["id"], env=served).stdout)
    # The merged model was audited: a BERT classifier over the base's four classes.
    assert report["target"]["model_type"] == "bert" and report["target"]["num_labels"] == 4
    by_name = {a["name"]: a for a in report["attacks"]}
    assert set(by_name) >= {"loss", "confidence"}
    assert by_name["loss"]["n_members"] == 24 and by_name["loss"]["n_non_members"] == 24
    assert "merge adapter" in report["timings"]


def test_cli_refuses_an_adapter_over_another_base_before_the_worker(served, folders):
    args = ["audit", "--model", str(folders["adapter"])]
    args += ["--base-model", str(folders["other_base"])]
    args += ["--members", str(folders["members"]), "--non-members", str(folders["non_members"])]
    done = leakgate(*args, "--name", "lora-wrong-base", env=served)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "not trained on this base model" in done.stderr
    listed = json.loads(leakgate("list", "--limit", "50", env=served).stdout)
    assert "lora-wrong-base" not in {a["model"]["name"] for a in listed["items"]}
