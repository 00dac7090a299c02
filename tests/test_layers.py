"""Layers point one way: `attacks` <- `workers` <- (task names only) `app`; the API stays light."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "opacus", "dp_accounting")


def imported_packages(package: str) -> dict[str, set[str]]:
    """Top-level package of every import statement (lazy ones too) in each module of `package`."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_app_never_imports_workers() -> None:
    offenders = [path for path, names in imported_packages("app").items() if "workers" in names]
    assert offenders == []


def test_attacks_imports_neither_app_nor_workers() -> None:
    offenders = [
        path for path, names in imported_packages("attacks").items() if names & {"app", "workers"}
    ]
    assert offenders == []


@pytest.mark.slow
def test_api_process_does_not_import_torch() -> None:
    """A fresh interpreter: the test process itself has long imported torch."""
    code = (
        f"import sys, app.main\nprint(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
