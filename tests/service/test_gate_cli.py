"""`leakgate` against a served instance: policies, `audit --wait --gate` exit codes, `status`
and `report --format` in every format."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from attacks.testing import build_tiny_text_classifier
from tests.utils.factories import LABELS, TEXTS, dataset_bytes
from tests.utils.processes import leakgate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gate-cli")
    (root / "members.jsonl").write_bytes(dataset_bytes(40))
    (root / "non_members.jsonl").write_bytes(dataset_bytes(40, offset=100))
    return {
        "model": build_tiny_text_classifier(root / "tiny", TEXTS, LABELS),
        "members": root / "members.jsonl",
        "non_members": root / "non_members.jsonl",
    }


def audit(inputs, env, *extra: str):
    return leakgate(
        "audit",
        "--model",
        str(inputs["model"]),
        "--members",
        str(inputs["members"]),
        "--non-members",
        str(inputs["non_members"]),
        *extra,
        env=env,
    )


def audit_id(done) -> str:
    return re.search(r"audit ([0-9a-f]{32}) queued", done.stderr).group(1)


def test_gate_exit_codes_status_and_reports(embedded, inputs, tmp_path):
    env = embedded["env"]
    done = leakgate("policy", "set", "--model", "strict", "--max-auc", "0", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rules"]["max_auc"] == 0

    strict = audit(inputs, env, "--name", "strict", "--wait", "--gate")
    assert strict.returncode == 1, strict.stderr
    assert "release gate (model policy): fail" in strict.stderr
    # The same audit without --gate exits by its verdict: no DP claim, so 0.
    lenient = audit(inputs, env, "--name", "strict", "--wait")
    assert lenient.returncode == 0, lenient.stderr
    # Another model name falls back to the built-in policy, which this audit passes.
    other = audit(inputs, env, "--name", "other", "--wait", "--gate")
    assert other.returncode == 0, other.stderr
    assert "release gate (built-in policy): pass" in other.stderr
    assert audit(inputs, env, "--gate").returncode == 3  # --gate needs --wait

    failed_id = audit_id(strict)
    status = leakgate("status", failed_id, env=env)
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert (shown["state"], shown["gate"]) == ("succeeded", "fail")

    junit = tmp_path / "gate.xml"
    done = leakgate("report", failed_id, "--format", "junit", "--out", str(junit), env=env)
    assert done.returncode == 0, done.stderr
    cases = ET.parse(junit).getroot().findall("./testsuite/testcase")
    assert [c.get("name") for c in cases if c.find("failure") is not None] == ["max_auc"]

    markdown = leakgate("report", failed_id, "--format", "md", env=env)
    assert "gate FAIL" in markdown.stdout and "**Verdict: no-claim**" in markdown.stdout
    html = tmp_path / "report.html"
    leakgate("report", failed_id, "--format", "html", "--out", str(html), env=env)
    assert "<svg" in html.read_text() and "https://" not in html.read_text()
    report = json.loads(leakgate("report", failed_id, env=env).stdout)
    assert report["verdict"]["status"] == "no-claim"

    assert leakgate("report", "0" * 32, env=env).returncode == 3
    assert leakgate("report", failed_id, "--format", "pdf", env=env).returncode == 3


def test_example_script_gates_a_release(embedded, inputs, tmp_path):
    """examples/gate-release.sh as a CI job runs it: exit 1 on a failed gate, reports written."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "leakgate"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m app.cli "$@"\n')
    wrapper.chmod(0o755)
    script = Path(__file__).resolve().parents[2] / "examples" / "gate-release.sh"
    env = {
        **embedded["env"],
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHONPATH": str(script.parents[1]),
        "LEAKGATE_MAX_AUC": "0",
    }
    args = [str(script), str(inputs["model"]), str(inputs["members"]), str(inputs["non_members"])]
    done = subprocess.run(
        [*args, "scripted", "2.0"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 1, done.stderr
    assert "gate FAILED for scripted 2.0" in done.stderr
    assert "gate FAIL" in (tmp_path / "leakgate-report.md").read_text()
    suite = ET.parse(tmp_path / "leakgate-report.xml").getroot()
    assert suite.get("failures") == "1"
    assert (tmp_path / "leakgate-report.html").read_text().startswith("<!doctype html>")


def test_split_create_then_audit_with_the_split(embedded, inputs, tmp_path):
    """`split create` writes the members to train on; `audit --split` runs on exactly the split,
    with the claim the server accounted at submission (the worker only reads it)."""
    env = embedded["env"]
    candidates = tmp_path / "candidates.jsonl"
    candidates.write_bytes(dataset_bytes(80, offset=300))
    train = tmp_path / "train.jsonl"
    done = leakgate(
        "split", "create", "--data", str(candidates), "--seed", "5", "--out", str(train), env=env
    )
    assert done.returncode == 0, done.stderr
    split_id = done.stdout.strip()
    members = [json.loads(line) for line in train.read_text().splitlines()]
    assert f"audit split {split_id}: {len(members)} members" in done.stderr
    all_ids = {str(i) for i in range(1, 81)}  # the candidates' line numbers
    assert 0 < len(members) < 80 and {m["id"] for m in members} < all_ids

    # A split stands for both files: naming either as well is a usage error, as is a group
    # size without a claim.
    both = audit(inputs, env, "--split", split_id)
    assert both.returncode == 3 and "--split gives members and non-members" in both.stderr
    model = ["--model", str(inputs["model"])]
    alone = leakgate("audit", *model, "--split", split_id, "--max-record-occurrences", "2", env=env)
    assert alone.returncode == 3 and "qualifies a DP claim" in alone.stderr

    report_path = tmp_path / "report.json"
    claim = ["--noise-multiplier", "1.1", "--sample-rate", "0.02", "--dp-steps", "200"]
    ran = leakgate(
        "audit",
        *model,
        "--split",
        split_id,
        *claim,
        "--wait",
        "--report-out",
        str(report_path),
        env=env,
    )
    assert ran.returncode in (0, 4), ran.stderr  # consistent, or inconclusive: never a violation
    report = json.loads(report_path.read_text())
    assert report["attacks"][0]["n_members"] == len(members)
    assert report["attacks"][0]["n_non_members"] == 80 - len(members)
    dp_claim = report["dp_claim"]
    assert dp_claim["accountant"] and len(dp_claim["accountants"]) == 4
    assert dp_claim["epsilon"] == dp_claim["accounted_epsilon"]
    audit_read = json.loads(
        leakgate(
            "status", re.search(r"audit ([0-9a-f]{32}) queued", ran.stderr).group(1), env=env
        ).stdout
    )
    assert (audit_read["split"], audit_read["membership_source"]) == (split_id, "service")
