"""Fixtures shared by the service tests: a tiny model and two datasets, uploaded for real; a
`leakgate serve` instance in a subprocess (SQLite, embedded broker)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from app.cli.demo import wait_until_ready
from tests.utils.factories import dataset_bytes, tiny_model_archive, upload
from tests.utils.processes import free_port, leakgate
from tests.utils.worker import Processes


@pytest.fixture(scope="session")
def model_body(tmp_path_factory) -> bytes:
    """One tiny model for the whole run: its upload is checked once per backend (same sha256)."""
    return tiny_model_archive(tmp_path_factory.mktemp("model"))


@pytest.fixture
def uploaded(client, auth, model_body) -> dict[str, str]:
    ids = {}
    for field, body, kind, name in (
        ("target", model_body, "model", "tiny.tar.gz"),
        ("members", dataset_bytes(20), "dataset", "members.jsonl"),
        ("non_members", dataset_bytes(20, offset=100), "dataset", "non_members.jsonl"),
    ):
        response = upload(client, auth, body, kind, name)
        assert response.status_code == 201, response.text
        ids[field] = response.json()["id"]
    return ids


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    home = tmp_path_factory.mktemp("embedded-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKGATE_")}
    env.update({"LEAKGATE_HOME": str(home), "LEAKGATE_BOOTSTRAP_SAMPLES": "200"})
    port = free_port()
    server = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_ready(server, proc)
        key = leakgate("keys", "create", "--tenant", "ci", env=env).stdout.strip()
        assert key.startswith("lg_")
        yield {
            "env": {**env, "LEAKGATE_SERVER": server, "LEAKGATE_API_KEY": key},
            "server": server,
            "home": home,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def procs(env) -> Iterator[Processes]:
    """Worker and sweeper processes on the module's `env`, all stopped after the test."""
    processes = Processes(env)
    yield processes
    processes.close()
