"""`python -m app.cli` is the `leakgate` command."""

from app.cli.main import run

run()
