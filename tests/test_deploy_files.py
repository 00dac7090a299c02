"""Static checks of Dockerfile and docker-compose.yml, so they cannot drift from the CLI or pins."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"postgres", "redis", "migrate", "api", "worker", "sweeper"}
STORAGE = "/var/lib/leakgate"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    """Dockerfile instructions with line continuations joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [ln.strip() for ln in joined.splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def cli_group() -> Any:
    """The click group behind the `leakgate` console script."""
    return typer.main.get_command(importlib.import_module("app.cli.main").app)


def _words(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(w) for w in command]


def _assert_real_command(group: Any, words: list[str]) -> None:
    """Fail unless words are `leakgate <cmd> [<sub>...] [--opt ...]` that the CLI accepts."""
    assert words[:1] == ["leakgate"], words
    command, ctx, rest = group, group.context_class(group, info_name="leakgate"), words[1:]
    while hasattr(command, "list_commands"):  # a group: the next word must name a child
        assert rest, f"{words}: `{ctx.command_path}` needs a subcommand"
        name, rest = rest[0], rest[1:]
        child = command.get_command(ctx, name)
        assert child is not None, f"{words}: `{name}` is not a command of `{ctx.command_path}`"
        command, ctx = child, child.context_class(child, info_name=name, parent=ctx)
    known = {opt for param in command.params for opt in param.opts + param.secondary_opts}
    for word in rest:
        if word.startswith("--"):
            assert word.split("=")[0] in known, f"{words}: `{word}` is not an option"


def _leakgate_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in compose["services"].items()
        if "build" in svc or str(svc.get("image", "")).startswith("leakgate")
    }


def test_compose_has_the_six_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES
    assert set(_leakgate_services(compose)) == {"migrate", "api", "worker", "sweeper"}


def test_compose_commands_are_registered_cli_commands(
    compose: dict[str, Any], cli_group: Any
) -> None:
    expected = {
        "migrate": ["db", "upgrade"],
        "api": ["api"],
        "worker": ["worker"],
        "sweeper": ["sweeper"],
    }
    for name, svc in _leakgate_services(compose).items():
        words = _words(svc["command"])
        assert words[1 : 1 + len(expected[name])] == expected[name], name
        _assert_real_command(cli_group, words)


def test_the_checker_rejects_unknown_commands(cli_group: Any) -> None:
    """The command check must be able to fail, or the test above proves nothing."""
    for words in (["leakgate", "nope"], ["leakgate", "db", "nope"], ["leakgate", "db"]):
        with pytest.raises(AssertionError):
            _assert_real_command(cli_group, words)
    with pytest.raises(AssertionError):
        _assert_real_command(cli_group, ["leakgate", "api", "--no-such-flag"])


def test_compose_wiring(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(_words(services["postgres"]["healthcheck"]["test"]))
    assert services["redis"]["image"].startswith("redis:7")
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker", "sweeper"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert "redis" in deps, name
    for name in ("api", "worker"):
        assert f"storage:{STORAGE}" in services[name]["volumes"], name
    # Recovery without an API: the sweeper service runs it, so the API's thread is off.
    assert services["sweeper"]["restart"] == "unless-stopped"
    assert services["api"]["environment"]["LEAKGATE_API_SWEEPER"] == "false"
    assert "LEAKGATE_API_SWEEPER" not in services["sweeper"]["environment"]
    assert "storage" in compose["volumes"]
    assert "8000:8000" in services["api"]["ports"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


def test_leakgate_services_share_production_env(compose: dict[str, Any]) -> None:
    for name, svc in _leakgate_services(compose).items():
        env = svc["environment"]
        assert env["LEAKGATE_ENV"] == "production", name
        assert env["LEAKGATE_DATABASE_URL"].startswith("postgresql+psycopg://"), name
        assert "@postgres:5432/" in env["LEAKGATE_DATABASE_URL"], name
        assert env["LEAKGATE_BROKER_URL"] == "redis://redis:6379/0", name
        assert env["LEAKGATE_STORAGE_DIR"] == STORAGE, name


def test_dockerfile_torch_pin_matches_constraints(dockerfile: list[str]) -> None:
    constraints = (ROOT / "constraints.txt").read_text()
    pin = re.search(r"^torch==(\S+)", constraints, re.MULTILINE)
    assert pin, "constraints.txt must pin torch"
    pip_lines = [ln for ln in dockerfile if ln.startswith("RUN") and "pip install" in ln]
    torch_pins = [p for ln in pip_lines for p in re.findall(r"\btorch==([\w.+-]+)", ln)]
    assert torch_pins and set(torch_pins) == {pin.group(1)}
    torch_line = next(ln for ln in pip_lines if "torch==" in ln)
    assert "--index-url" in torch_line and "TORCH_INDEX_URL" in torch_line
    assert any("pip install -c constraints.txt '.[server]'" in ln for ln in pip_lines)
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in dockerfile


def test_dockerfile_runs_as_non_root_offline(dockerfile: list[str]) -> None:
    users = [ln.split()[1] for ln in dockerfile if ln.startswith("USER ")]
    assert users, "Dockerfile must set USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    env = " ".join(ln for ln in dockerfile if ln.startswith("ENV "))
    assert "HF_HUB_OFFLINE=1" in env and "TRANSFORMERS_OFFLINE=1" in env
    assert "EXPOSE 8000" in dockerfile
    assert any(ln.startswith("HEALTHCHECK") and "/healthz" in ln for ln in dockerfile)


def test_dockerfile_default_command_is_the_api(dockerfile: list[str], cli_group: Any) -> None:
    cmd = [ln for ln in dockerfile if ln.startswith("CMD ")][-1]
    words = yaml.safe_load(cmd.removeprefix("CMD "))  # exec form is a JSON list
    assert words[:2] == ["leakgate", "api"]
    _assert_real_command(cli_group, words)
