"""The `leakgate` command: the client commands a pipeline uses (audit, wait, status, report,
list, policy, canaries) and the server commands an operator uses (serve, api, worker, db, keys).

Exit codes: 0 consistent or no claim (with --gate: gate passed), 1 violation (with --gate: gate
failed), 2 audit failed or cancelled, or server unreachable, 3 usage error (bad arguments or
input the server refused), 4 inconclusive verdict without --gate (with --gate the policy's
`inconclusive` rule decides between 0 and 1), 5 (`status` only) the audit has not ended yet.
"""

from __future__ import annotations

import sys

import typer

from app.cli import client_commands, server_commands
from app.cli.summary import EXIT_CODES_HELP, EXIT_USAGE

cli = typer.Typer(
    help="leakgate: audit a trained model for training-data leakage.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
)
for commands in (client_commands.cli, server_commands.cli):
    cli.registered_commands += commands.registered_commands
cli.add_typer(server_commands.db_cli, name="db")
cli.add_typer(server_commands.keys_cli, name="keys")
cli.add_typer(client_commands.policy_cli, name="policy")
cli.add_typer(client_commands.canaries_cli, name="canaries")
cli.add_typer(client_commands.split_cli, name="split")
app = cli  # the click group is typer.main.get_command(app)


def run() -> None:
    """Console-script entry: usage errors exit 3 (click's default 2 means 'audit failed' here)."""
    command = typer.main.get_command(cli)
    try:
        code = command.main(args=sys.argv[1:], prog_name="leakgate", standalone_mode=False)
    except typer.Abort:
        sys.exit(130)
    except typer.exceptions.TyperException as exc:  # typer's click: usage and parameter errors
        show = getattr(exc, "show", None)  # click's exceptions print usage and the error
        if callable(show):
            show()
        else:
            print(f"Error: {exc.format_message()}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except ModuleNotFoundError as exc:  # a server command in a client-only install
        print(
            f"leakgate: this command needs the server extra ({exc.name} is missing): "
            "pip install 'leakgate[server]'",
            file=sys.stderr,
        )
        sys.exit(EXIT_USAGE)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    run()
