"""What every benchmark shares: measured child processes, the cached target model, machine facts.

Each measurement runs in a fresh `python -m bench.<module>` child so that its peak memory is its
own: the parent reaps the child with `os.wait4`, whose rusage is that one process's `ru_maxrss`
(a parent-wide RUSAGE_CHILDREN would report the largest child so far, and tracemalloc misses
torch's allocations). The child does its work, writes a JSON payload and exits.

The audited model is the bundled intent classifier (`demo.intent.build_example`), built
once per size and cached under `bench/.cache/` (ignored by git), so reruns measure the same model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
CACHE_DIR = BENCH_DIR / ".cache"
RESULTS_DIR = BENCH_DIR / "results"

VERSIONED_PACKAGES = (
    "leakgate",
    "torch",
    "transformers",
    "tokenizers",
    "numpy",
    "scipy",
    "scikit-learn",
    "adversarial-robustness-toolbox",
    "privacy-meter",
)

Payload = dict[str, Any]

# Threads per child for torch's intra-op pool (OpenMP / MKL); None leaves torch's default (one
# per core). On cores shared with other work, torch's default pool can stall for whole
# scheduler slices at every operation, so `bench.run --threads 1` is the stable choice there.
_child_threads: int | None = None


def set_child_threads(threads: int | None) -> None:
    """Give every later child this many intra-op threads (None: torch's default)."""
    global _child_threads
    if threads is not None and threads < 1:
        raise ValueError("threads must be at least 1")
    _child_threads = threads


def child_threads() -> int | None:
    return _child_threads


ChildTask = Callable[[Payload], Payload]


@dataclass(frozen=True)
class ChildRun:
    """One measured child process: its wall time and peak RSS as the parent saw them."""

    task: str
    wall_s: float
    peak_rss_mib: float
    returncode: int
    payload: Payload
    stderr_tail: str
    load_before: float
    load_after: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and "error" not in self.payload

    def as_dict(self) -> Payload:
        return {
            "task": self.task,
            "ok": self.ok,
            "wall_s": self.wall_s,
            "peak_rss_mib": self.peak_rss_mib,
            "returncode": self.returncode,
            "load_1min_before_after": [self.load_before, self.load_after],
            "payload": self.payload,
            **({} if self.ok else {"stderr_tail": self.stderr_tail}),
        }


def run_child(module: str, task: str, spec: Payload, *, timeout_s: float = 1800) -> ChildRun:
    """Run `task` of `module` in a fresh interpreter and measure that process alone.

    Wall time counts from spawning the interpreter to reaping it, so imports count too; the
    child reports finer timings (imports, work) in its payload.
    """
    with tempfile.TemporaryDirectory(prefix="leakgate-bench-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        stderr_path = Path(tmp) / "stderr.txt"
        spec_path.write_text(json.dumps(spec))
        command = [
            sys.executable,
            "-m",
            module,
            "--task",
            task,
            "--spec",
            str(spec_path),
            "--out",
            str(out_path),
        ]
        load_before = os.getloadavg()[0]
        with stderr_path.open("wb") as stderr:
            start = time.perf_counter()
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                env=_child_env(),
            )
            killer = threading.Timer(timeout_s, process.kill)
            killer.start()
            try:
                _, status, usage = os.wait4(process.pid, 0)
            finally:
                killer.cancel()
            wall_s = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
        payload: Payload = {}
        if out_path.exists():
            payload = json.loads(out_path.read_text())
        elif process.returncode != 0:
            payload = {"error": f"child exited with {process.returncode} and wrote no result"}
        stderr_tail = stderr_path.read_text(errors="replace")[-4000:]
    return ChildRun(
        task=task,
        wall_s=wall_s,
        peak_rss_mib=usage.ru_maxrss / 1024,  # Linux reports KiB
        returncode=process.returncode,
        payload=payload,
        stderr_tail=stderr_tail,
        load_before=round(load_before, 2),
        load_after=round(os.getloadavg()[0], 2),
    )


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "TRANSFORMERS_VERBOSITY": "error",
            "PYTHONWARNINGS": "ignore",
        }
    )
    if _child_threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(_child_threads)
    return env


def child_main(tasks: dict[str, ChildTask], argv: Sequence[str] | None = None) -> None:
    """Entry point of a child: run one task on its spec and write the payload as JSON.

    A failing task still writes a payload, with the error, so the parent can report why.
    """
    parser = argparse.ArgumentParser(description="Run one benchmark measurement (internal).")
    parser.add_argument("--task", required=True, choices=sorted(tasks))
    parser.add_argument("--spec", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    try:
        payload = tasks[args.task](spec)
        code = 0
    except Exception as error:
        payload = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        code = 1
    payload.setdefault("self_peak_rss_mib", self_peak_rss_mib())
    args.out.write_text(json.dumps(payload, default=_json_default))
    sys.exit(code)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def self_peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Stopwatch:
    """Named wall-clock laps: `with watch.lap("score"): ...` adds to `watch.laps["score"]`."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> _Lap:
        return _Lap(self, name)


class _Lap:
    def __init__(self, watch: Stopwatch, name: str) -> None:
        self.watch, self.name = watch, name
        self.start = 0.0

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self.start
        self.watch.laps[self.name] = self.watch.laps.get(self.name, 0.0) + elapsed


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


# --------------------------------------------------------------------------------------
# The audited model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The trained intent classifier and its member / non-member record files."""

    model_dir: Path
    members: Path
    non_members: Path
    build: Payload

    def as_dict(self) -> Payload:
        """Paths relative to the repository root, where every child runs."""
        return {
            "model_dir": _relative(self.model_dir),
            "members": _relative(self.members),
            "non_members": _relative(self.non_members),
            "build": self.build,
        }


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def ensure_target(*, n_members: int, n_non_members: int, epochs: int, seed: int = 0) -> Target:
    """The bundled intent classifier at this size, trained once and then reused from the cache.

    Training runs in a child too, so it gets the same thread settings as the measurements.
    """
    folder = CACHE_DIR / f"intent-m{n_members}-n{n_non_members}-e{epochs}-s{seed}"
    marker = folder / "build.json"
    if not marker.exists():
        spec = {
            "folder": str(folder),
            "n_members": n_members,
            "n_non_members": n_non_members,
            "epochs": epochs,
            "seed": seed,
        }
        built = run_child("bench.harness", "build-target", spec, timeout_s=4 * 3600)
        if not built.ok:
            raise RuntimeError(
                f"building the target failed: {built.payload.get('error')}\n{built.stderr_tail}"
            )
        marker.write_text(json.dumps(built.payload, indent=2))
    return Target(
        model_dir=folder / "model",
        members=folder / "members.jsonl",
        non_members=folder / "non_members.jsonl",
        build=json.loads(marker.read_text()),
    )


def _build_target(spec: Payload) -> Payload:
    import torch

    from demo.intent import build_example

    start = time.perf_counter()
    build_example(
        Path(spec["folder"]),
        seed=spec["seed"],
        n_members=spec["n_members"],
        n_non_members=spec["n_non_members"],
        epochs=spec["epochs"],
    )
    return {
        "n_members": spec["n_members"],
        "n_non_members": spec["n_non_members"],
        "epochs": spec["epochs"],
        "seed": spec["seed"],
        "train_seconds": time.perf_counter() - start,
        "torch_threads": torch.get_num_threads(),
    }


# --------------------------------------------------------------------------------------
# Machine and versions
# --------------------------------------------------------------------------------------


def machine_info() -> Payload:
    """CPU model, cores, RAM and load: what a reader needs to compare two result files."""
    cpu_model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    ram_gib = float("nan")
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = int(line.split()[1]) / 1024**2
                break
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model or platform.processor() or "unknown",
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "ram_gib": round(ram_gib, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: other work competing for the cores."""
    return [round(value, 2) for value in os.getloadavg()]


def versions() -> dict[str, str]:
    """Installed versions of leakgate, its stack and the peers ("not installed" if absent)."""
    found = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def device_info(device: str) -> Payload:
    """The device the scoring benchmarks ran on, by name and precision; asked in a child so
    this orchestrating process never holds a CUDA context while the measured ones run."""
    if device == "cpu":
        return {"device": "cpu", "name": None, "precision": "float32"}
    child = run_child("bench.harness", "device-info", {"device": device}, timeout_s=300)
    return child.payload if child.ok else {"device": device, "error": child.payload.get("error")}


def _device_info(spec: Payload) -> Payload:
    import torch

    from attacks.device import precision_name

    device = spec["device"]
    properties = torch.cuda.get_device_properties(device)
    return {
        "device": device,
        "name": torch.cuda.get_device_name(device),
        "memory_gib": round(properties.total_memory / 2**30, 1),
        "precision": precision_name(device),
        "cuda": torch.version.cuda,
    }


if __name__ == "__main__":
    child_main({"build-target": _build_target, "device-info": _device_info})
