"""SIGTERM to `leakgate demo` or `leakgate serve` ends every process they started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from demo.intent import build_example, make_intent_records, write_jsonl

pytestmark = pytest.mark.slow


def _processes_with_home(home: Path) -> list[int]:
    """Pids whose environment names this LEAKGATE_HOME (the service's processes, and only them)."""
    marker = f"LEAKGATE_HOME={home}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue
        if marker in environ.split(b"\0") and state != "Z":
            pids.append(int(entry.name))
    return pids


def _wait_gone(home: Path, timeout_s: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := _processes_with_home(home)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKGATE_")}
    return env | {"LEAKGATE_HOME": str(home)}


def _until_ready(url: str, proc: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode}"
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


def test_sigterm_to_demo_stops_serve_and_its_worker(tmp_path):
    home = tmp_path / "home"
    example = build_example(home / "example", n_members=60, n_non_members=60, epochs=2)
    write_jsonl(example.members.parent / "population.jsonl", make_intent_records(60, seed=1))
    port = _free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "demo", "--port", str(port), "--no-keep-serving"],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _until_ready(f"http://127.0.0.1:{port}", demo)
    assert len(_processes_with_home(home)) >= 3  # demo, serve, worker
    demo.send_signal(signal.SIGTERM)
    demo.wait(timeout=60)
    assert _wait_gone(home) == []


def test_sigterm_to_serve_stops_its_worker(tmp_path):
    home = tmp_path / "home"
    port = _free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _until_ready(f"http://127.0.0.1:{port}", serve)
    assert len(_processes_with_home(home)) >= 2
    serve.send_signal(signal.SIGTERM)
    serve.wait(timeout=60)
    assert _wait_gone(home) == []
