"""The CLI as a pipeline runs it, against a real `leakgate serve` (SQLite, embedded broker).

A Trainer output folder audits with only its model files sent; `--wait` outlives a server
that is killed and restarted; `status`, `wait`, `list` agree on the result; and a venv with only
`pip install leakgate` (no torch, no server code's dependencies) runs the same audit.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.cli.demo import wait_until_ready
from app.cli.summary import exit_code
from demo.intent import build_example

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """`leakgate serve` in a subprocess that a test may kill and start again."""

    def __init__(self, home: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKGATE_")}
        self.env.update(
            {
                "LEAKGATE_HOME": str(home),
                "LEAKGATE_BOOTSTRAP_SAMPLES": "200",
                # A worker killed with the server is taken over quickly after the restart.
                "LEAKGATE_STALE_AFTER_S": "10",
                "LEAKGATE_HEARTBEAT_INTERVAL_S": "2",
                "LEAKGATE_SWEEP_AFTER_S": "2",
                "LEAKGATE_SWEEP_INTERVAL_S": "1",
            }
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_ready(self.url, self.proc)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = Served(tmp_path_factory.mktemp("served-home"))
    server.start()
    key = subprocess.run(
        [sys.executable, "-m", "app.cli", "keys", "create", "--tenant", "pipeline"],
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    server.env.update({"LEAKGATE_SERVER": server.url, "LEAKGATE_API_KEY": key})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def trainer_output(tmp_path_factory):
    """The example model as `Trainer` leaves it: checkpoints and pickled training state beside."""
    example = build_example(
        tmp_path_factory.mktemp("trainer"), n_members=120, n_non_members=120, epochs=20
    )
    folder = example.model_dir
    (folder / "checkpoint-500").mkdir()
    (folder / "checkpoint-500" / "optimizer.pt").write_bytes(b"\x80\x04pickled")
    (folder / "training_args.bin").write_bytes(b"\x80\x04pickled")
    return example


def _cli(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _audit_state(served: Served, audit_id: str) -> dict:
    headers = {"Authorization": f"Bearer {served.env['LEAKGATE_API_KEY']}"}
    return httpx.get(f"{served.url}/v1/audits/{audit_id}", headers=headers, timeout=10).json()


def _expected_exit(audit: dict) -> int:
    """What `audit --wait` must exit with for this final audit (the CLI's documented rule)."""
    return exit_code(audit)


def test_wait_outlives_a_server_restart_and_exits_by_the_real_result(served, trainer_output):
    ex = trainer_output
    args = ["audit", "--model", str(ex.model_dir), "--members", str(ex.members)]
    args += ["--non-members", str(ex.non_members), "--epsilon", "1", "--wait", "--json"]
    follower = _cli(args, served.env)
    audit_id = None
    deadline = time.monotonic() + 300
    # The audit's id appears in the queued line on stderr only after upload; find it by listing.
    while audit_id is None and time.monotonic() < deadline:
        headers = {"Authorization": f"Bearer {served.env['LEAKGATE_API_KEY']}"}
        page = httpx.get(f"{served.url}/v1/audits", headers=headers, timeout=10).json()
        running = [a for a in page["items"] if a["state"] == "running"]
        audit_id = running[0]["id"] if running else None
        time.sleep(0.5)
    assert audit_id is not None, "the audit never started"
    served.kill()
    time.sleep(3)  # the follower now meets a refused connection and backs off
    served.start()
    out, err = follower.communicate(timeout=600)
    final = _audit_state(served, audit_id)
    assert final["state"] in {"succeeded", "failed"}
    assert follower.returncode == _expected_exit(final), err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["id"] == audit_id and result["exit_code"] == follower.returncode
    assert result["url"] == f"{served.url}/dashboard/audits/{audit_id}"
    assert result["verdict"] == final["verdict"]
    assert "retrying" in err  # it met the dead server and waited it out
    assert "not uploaded (not part of the model): checkpoint-500" in err
    assert "training_args.bin" in err
    # Outside a terminal, progress is a line per stage, not a redrawn bar.
    progress = [ln for ln in err.splitlines() if re.match(r"^\s*\d+% \S", ln)]
    assert len(progress) >= 2, err

    status = subprocess.run(
        [sys.executable, "-m", "app.cli", "status", audit_id],
        env=served.env,
        capture_output=True,
        text=True,
    )
    assert status.returncode == follower.returncode
    again = subprocess.run(
        [sys.executable, "-m", "app.cli", "wait", audit_id, "--json"],
        env=served.env,
        capture_output=True,
        text=True,
    )
    assert again.returncode == follower.returncode
    assert json.loads(again.stdout)["id"] == audit_id
    listed = subprocess.run(
        [sys.executable, "-m", "app.cli", "list", "--limit", "5"],
        env=served.env,
        capture_output=True,
        text=True,
    )
    assert audit_id in {a["id"] for a in json.loads(listed.stdout)["items"]}


def test_a_folder_without_config_is_a_usage_error(served, trainer_output, tmp_path):
    ex = trainer_output
    data = ["--members", str(ex.members), "--non-members", str(ex.non_members)]
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "--model", str(tmp_path), *data],
        env=served.env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3
    said = " ".join(done.stderr.split())  # rich wraps lines off a terminal
    assert "no config.json" in said and "Traceback" not in said


def test_client_only_install_audits_without_torch(served, trainer_output, tmp_path):
    venv = tmp_path / "client-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    python = str(venv / "bin" / "python")
    absent = subprocess.run(
        [python, "-c", "import importlib.util as u, sys; "
         "sys.exit(any(u.find_spec(m) for m in ('torch', 'sqlalchemy', 'celery', 'fastapi')))"],
    )  # fmt: skip
    assert absent.returncode == 0, "the client install pulled server dependencies"
    ex = trainer_output
    env = {k: v for k, v in served.env.items() if k != "PYTHONPATH"}
    data = ["--members", str(ex.members), "--non-members", str(ex.non_members)]
    done = subprocess.run(
        [str(venv / "bin" / "leakgate"), "audit", "--model", str(ex.model_dir), *data, "--wait"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    audit_id = done.stdout.strip().splitlines()[-1]
    assert done.returncode == _expected_exit(_audit_state(served, audit_id)), done.stderr
    server_cmd = subprocess.run(
        [str(venv / "bin" / "leakgate"), "db", "current"], env=env, capture_output=True, text=True
    )
    assert server_cmd.returncode == 3 and "leakgate[server]" in server_cmd.stderr
