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
