"""`leakgate serve` in a subprocess (SQLite, embedded broker) driven by `leakgate audit`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from demo.intent import build_example, make_intent_records, write_jsonl
from tests.utils.processes import free_port, leakgate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    return build_example(tmp_path_factory.mktemp("ex"), n_members=150, n_non_members=150, epochs=25)


def audit_args(example, *extra: str) -> list[str]:
    return [
        "audit",
        "--model",
        str(example.model_dir),
        "--members",
        str(example.members),
        "--non-members",
        str(example.non_members),
        "--wait",
        *extra,
    ]


def test_consistent_claim_exits_0_and_violation_exits_1(embedded, example, tmp_path):
    out = tmp_path / "report.json"
    done = leakgate(
        *audit_args(example, "--epsilon", "50", "--report-out", str(out)), env=embedded["env"]
    )
    assert done.returncode == 0, done.stderr
    assert "consistent" in done.stderr
    assert '"verdict"' in out.read_text()

    done = leakgate(
        *audit_args(example, "--epsilon", "0.05", "--name", "leaky"), env=embedded["env"]
    )
    assert done.returncode == 1, done.stderr
    assert "violation" in done.stderr
    listed = httpx.get(
        f"{embedded['server']}/v1/audits",
        params={"model_name": "leaky"},
        headers={"Authorization": f"Bearer {embedded['env']['LEAKGATE_API_KEY']}"},
    )
    assert listed.json()["items"][0]["verdict"] == "violation"


def test_usage_errors_exit_3(embedded, example):
    done = leakgate(
        "audit",
        "--model",
        "/no/such/folder",
        "--members",
        str(example.members),
        "--non-members",
        str(example.non_members),
        env=embedded["env"],
    )
    assert done.returncode == 3
    bad = example.members.parent / "bad.jsonl"
    bad.write_text('{"text": "no label here"}\n')
    done = leakgate(
        "audit",
        "--model",
        str(example.model_dir),
        "--members",
        str(bad),
        "--non-members",
        str(example.non_members),
        env=embedded["env"],
    )
    assert done.returncode == 3
    assert "label" in done.stderr


def test_unreachable_server_exits_2(example):
    env = {
        **os.environ,
        "LEAKGATE_API_KEY": "lg_x",
        "LEAKGATE_SERVER": f"http://127.0.0.1:{free_port()}",
    }
    done = leakgate(*audit_args(example), env=env)
    assert done.returncode == 2


def test_api_refuses_to_start_on_an_old_schema(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKGATE_")}
    env["LEAKGATE_HOME"] = str(tmp_path)
    done = leakgate("api", "--port", str(free_port()), env=env, timeout=60)
    assert done.returncode == 2
    assert "leakgate db upgrade" in done.stderr


def test_population_enables_reference_attacks_from_the_cli(embedded, example, tmp_path):
    population = tmp_path / "population.jsonl"
    write_jsonl(population, make_intent_records(200, seed=5, label_noise=0.2, id_prefix="p"))
    out = tmp_path / "report.json"
    done = leakgate(
        *audit_args(
            example,
            "--population",
            str(population),
            "--reference-models",
            "2",
            "--report-out",
            str(out),
        ),
        env=embedded["env"],
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    by_name = {a["name"]: a for a in report["attacks"]}
    assert {"lira-global", "rmia"} <= set(by_name)
    assert by_name["rmia"]["n_reference_models"] == 2
    assert report["records_at_risk"] and report["records_at_risk"][0]["text"] is None
    assert "records at risk" in done.stderr


def test_canaries_create_writes_records_and_audit_takes_the_set(embedded, example, tmp_path):
    from demo.intent import INTENTS

    env, records = embedded["env"], tmp_path / "canaries.jsonl"
    labels = [arg for intent in INTENTS[:3] for arg in ("--label", intent)]
    done = leakgate(
        "canaries", "create", "--out", str(records), "--count", "6", "--repetitions", "3",
        "--seed", "1", *labels, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    set_id = done.stdout.strip()
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert lines and len(lines) % 3 == 0
    assert all(r["text"].startswith("my pin code is ") and r["label"] in INTENTS for r in lines)
    # A set of another tenant's, or none at all, is refused before anything is queued.
    bad = leakgate(*audit_args(example, "--canary-set", "nope"), env=env)
    assert bad.returncode == 3 and "canary set" in bad.stderr
    stored = httpx.get(
        f"{embedded['server']}/v1/canary-sets/{set_id}",
        headers={"Authorization": f"Bearer {env['LEAKGATE_API_KEY']}"},
    ).json()
    assert stored["n_inserted"] * 3 == len(lines) and stored["count"] == 6
