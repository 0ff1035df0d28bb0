"""The one entry of the ``ziri-images`` command line: the parser of every command, and ``main``.

Each command group adds its own commands (``dev``, ``keys``, ``teams``, ``ledger``, ``pricing``, ``db``,
``alerts``).
Every failure a command meets reaches ``main`` as one ``CliError`` (``errors.py``), printed as
one line. Exit codes: 0 success, 1 the command failed (the message says why), 2 the command line
was wrong (argparse's usage message), 130 interrupted.
"""

import argparse
import sys

from .._version import __version__
from . import alerts
from . import db
from . import dev
from . import keys
from . import ledger
from . import pricing
from . import teams
from .errors import LIBRARY_FAILURES
from .errors import CliError
from .errors import as_cli_error


def build_parser():
    """Return the parser of every command; each command's ``handler`` runs it."""
    parser = argparse.ArgumentParser(
        prog="ziri-images", description="Run the ziri-images gateway, manage its keys, report spend from its "
                                        "ledger and check its catalog.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dev.add_commands(commands)
    keys.add_commands(commands)
    teams.add_commands(commands)
    ledger.add_report_command(commands)
    ledger.add_ledger_commands(commands)
    pricing.add_commands(commands)
    db.add_commands(commands)
    alerts.add_commands(commands)
    return parser


def run_command(args):
    """Run the parsed command and return its exit code; raise ``CliError`` for any failure it meets."""
    try:
        return args.handler(args) or 0
    except LIBRARY_FAILURES as error:
        raise as_cli_error(error) from error


def main(argv=None):
    """Run the command in ``argv`` (default: sys.argv); return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return run_command(args)
    except CliError as error:
        print(f"ziri-images: error: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
