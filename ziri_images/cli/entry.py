"""The ``ziri-images`` command line: argparse wiring for every command.

Exit codes: 0 success, 1 the command failed (the message says why), 2 the command line was
wrong (argparse's usage message).
"""

import argparse
import sys
from datetime import datetime
from datetime import timezone

from .._version import __version__
from ..errors import ConfigError
from ..keys import keyfile
from ..keys.store import LIMIT_MAXIMUMS
from ..keys.store import limit_problem
from ..keys.store import limit_rule
from ..ledger.report import GROUPINGS
from . import commands as run
from . import db
from . import launch
from .tables import FORMATS

# Words that clear a limit, an expiry or an allow-list.
UNSET_WORDS = {"none", "unlimited", "never", "any"}
# (keys.json name, number type, metavar, help) of each limit option.
LIMIT_OPTIONS = (
    ("daily_spend_limit", float, "USD", "spend per UTC day"),
    ("monthly_spend_limit", float, "USD", "spend per calendar month (UTC)"),
    ("requests_per_minute", int, "N", "requests admitted in any 60 seconds"),
    ("max_concurrent_requests", int, "N", "requests in flight at once"),
)


# --- argument types ---------------------------------------------------------------------

def _limit_type(name, number_type):
    def parse(text):
        if text.strip().lower() in UNSET_WORDS:
            return None
        try:
            value = number_type(text)
        except ValueError:
            value = None
        if value is None or limit_problem(name, value) is not None:
            # NaN, infinities and values past the largest limit could never be enforced: refused here.
            raise argparse.ArgumentTypeError(f"expected {limit_rule(name)}, or 0 / 'none' for unlimited; "
                                             f"got {text!r}") from None
        return value or None  # 0 means unlimited, as in keys.json: store it as no limit at all
    return parse


def when(text):
    """Parse an ISO date or date-time (UTC when no offset is given) into an aware datetime."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO date (2026-12-01) or date-time "
                                         f"(2026-12-01T09:00:00Z), got {text!r}") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def expiry(text):
    if text.strip().lower() in UNSET_WORDS:
        return None
    return when(text).strftime("%Y-%m-%dT%H:%M:%SZ")


def name_list(text):
    if text.strip().lower() in UNSET_WORDS:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names, or 'any' to allow all")
    return names


def groupings(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in GROUPINGS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected one or more of {', '.join(GROUPINGS)} (comma-separated)")
    return tuple(dict.fromkeys(names))


# --- wiring -----------------------------------------------------------------------------

def _keys_file_option(parser):
    parser.add_argument("--keys-file", help="the key file (default: $ZIRI_KEYS_FILE or keys.json)")


def _pricing_file_option(parser):
    parser.add_argument("--pricing-file", help="the catalog (default: $ZIRI_PRICING_FILE or pricing.json)")


def _format_option(parser, default="table", choices=FORMATS):
    parser.add_argument("--format", choices=choices, default=default, help=f"output format (default {default})")


def _key_options(parser):
    """Options shared by 'keys create' and 'keys set'; absent ones leave the record unchanged."""
    group = parser.add_argument_group("limits (0 or 'none' = unlimited)")
    for name, number_type, metavar, help_text in LIMIT_OPTIONS:
        group.add_argument(f"--{name.replace('_', '-')}", dest=name, type=_limit_type(name, number_type),
                           metavar=metavar, default=argparse.SUPPRESS,
                           help=f"{help_text} (at most {LIMIT_MAXIMUMS[name]:,})")
    access = parser.add_argument_group("access")
    access.add_argument("--expires-at", type=expiry, metavar="WHEN", default=argparse.SUPPRESS,
                        help="ISO date or date-time (UTC unless an offset is given), or 'never'")
    access.add_argument("--allowed-providers", type=name_list, metavar="LIST", default=argparse.SUPPRESS,
                        help="comma-separated providers, or 'any'")
    access.add_argument("--allowed-models", type=name_list, metavar="LIST", default=argparse.SUPPRESS,
                        help="comma-separated models, or 'any'")
    _pricing_file_option(parser)


def _key_action(actions, name, help_text, handler, description=None, **defaults):
    """Add ``keys NAME ID``: a command on one key, with --keys-file."""
    description = description or f"{help_text[0].upper()}{help_text[1:]}."
    parser = actions.add_parser(name, help=help_text, description=description)
    parser.add_argument("id", metavar="ID", help="the key id")
    _keys_file_option(parser)
    parser.set_defaults(handler=handler, **defaults)
    return parser


def _add_keys_commands(commands):
    keys = commands.add_parser("keys", help="create, list, limit, disable, rotate, revoke and delete API keys",
                               description="Manage keys.json. Edits are atomic and safe while the gateway "
                                           "runs; it picks them up without a restart.")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a key and print it (once)",
                                description="Create a key for a user. The key is printed once on stdout; "
                                            "only its hash is stored.")
    create.add_argument("--user", required=True, help="the user id (part of the key: letters, digits, _ . -)")
    create.add_argument("--id", help="the key id (default: key_ + 8 random hex digits)")
    _key_options(create)
    _keys_file_option(create)
    create.set_defaults(handler=run.keys_create)

    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    _format_option(listing)
    _keys_file_option(listing)
    listing.set_defaults(handler=run.keys_list)

    show = _key_action(actions, "show", "show one key's record (never the key itself)", run.keys_show)
    _format_option(show, default="table", choices=("table", "json"))
    _key_action(actions, "disable", "refuse the key at once (reversible)", run.keys_status, status="disabled")
    _key_action(actions, "enable", "accept a disabled key again", run.keys_status, status="active")
    _key_action(actions, "revoke", "disable the key, recording when; its record and id stay", run.keys_revoke,
                description="Disable the key and record when (revoked_at); its record, id and ledger history stay.")
    _key_action(actions, "delete", "remove the key from the file", run.keys_delete,
                description="Remove the key's record from keys.json; its ledger records keep its id. Prefer "
                            "'revoke' for a key that has served requests.")
    _key_action(actions, "rotate", "give a key a new secret; the old one stops working at once", run.keys_rotate,
                description="Replace the key's secret. The new key is printed once; the old one is refused as "
                            "soon as the gateway sees the file change.")
    update = _key_action(actions, "set", "change a key's limits, expiry or allow-lists", run.keys_set,
                         description="Change a key's limits, expiry or allow-lists; options not given are left "
                                     "as they are.")
    _key_options(update)


def _add_report_command(commands):
    parser = commands.add_parser(
        "report", aliases=["usage"], help="spend and image counts from the ledger",
        description="Spend and images per key, user, model and/or day. Each request counts once, at its "
                    "admission time, at its charged amount (or its reserved amount if its worker died and "
                    "no charge followed).")
    parser.add_argument("--view", choices=("spend", "refusals"), default="spend",
                        help="spend (the default) or refusals: refused requests per day, key and code")
    parser.add_argument("--by", type=groupings, default=("key",), metavar="GROUPS",
                        help=f"group by one or more of {', '.join(GROUPINGS)}, comma-separated (default key)")
    _time_range_options(parser)
    _format_option(parser)
    _ledger_option(parser)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show progress on stderr (default: when stderr is a terminal)")
    parser.set_defaults(handler=run.report)


def _ledger_option(parser):
    parser.add_argument("--ledger", help="read this JSONL ledger (default: the configured store: "
                                         "$ZIRI_LEDGER_PATH or var/ledger.jsonl)")


def _time_range_options(parser):
    parser.add_argument("--since", type=when, metavar="WHEN", help="from this ISO date/date-time (inclusive, UTC)")
    parser.add_argument("--until", type=when, metavar="WHEN", help="up to this ISO date/date-time (exclusive, UTC)")


def _add_ledger_commands(commands):
    ledger = commands.add_parser("ledger", help="export the ledger's records",
                                 description="Move the ledger's records between stores.")
    actions = ledger.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write every record as JSONL on stdout",
                                description="Write every record of the store, oldest first, as JSONL on stdout "
                                            "in the file store's format (one compact JSON object per line). "
                                            "Records are filtered on their time (ts).")
    _time_range_options(export)
    _ledger_option(export)
    export.set_defaults(handler=run.ledger_export)
    load = actions.add_parser("import", help="load a JSONL ledger into the PostgreSQL store",
                              description="Load the records of a JSONL ledger (the file store's, or an export) "
                                          "into the database. Records already stored (same type and request id) "
                                          "are skipped, so running it twice imports nothing twice.")
    load.add_argument("file", metavar="FILE", help="the JSONL ledger to load")
    load.add_argument("--database-url", help="the database (default: $ZIRI_DATABASE_URL, else $DATABASE_URL)")
    load.add_argument("--into-file-store", action="store_true",
                      help="with no database configured, append to the file store's ledger instead")
    load.set_defaults(handler=db.ledger_import)


def _add_pricing_commands(commands):
    pricing = commands.add_parser("pricing", help="check the catalog (pricing.json)")
    actions = pricing.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate pricing.json and print the catalog",
                               description="Validate the catalog as the gateway does at start-up and print "
                                           "every price. Exits 1 if the file is invalid.")
    _format_option(check)
    _pricing_file_option(check)
    check.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    check.set_defaults(handler=run.pricing_check)


def _add_db_commands(commands):
    database = commands.add_parser("db", help="the PostgreSQL store's schema")
    actions = database.add_subparsers(dest="action", required=True, metavar="ACTION")
    migrate = actions.add_parser(
        "migrate", help="create or upgrade the database schema (safe at every deploy)",
        description="Apply the schema migrations the database lacks; a current schema is left as it is. "
                    "With no database configured (the file store) there is nothing to do: exits 0.")
    migrate.add_argument("--database-url", help="the database (default: $ZIRI_DATABASE_URL, else $DATABASE_URL)")
    migrate.add_argument("--timeout", type=float, default=10.0, help="seconds to connect (default 10)")
    migrate.set_defaults(handler=db.db_migrate)


def _add_run_commands(commands):
    serve_parser = commands.add_parser("serve", help="run the gateway under gunicorn (production)")
    serve_parser.add_argument("--config", default="gunicorn.conf.py", help="gunicorn config file")
    serve_parser.set_defaults(handler=launch.serve)

    dev_parser = commands.add_parser(
        "dev", help="run the gateway locally, with the stub provider when no OpenAI key is set")
    dev_parser.add_argument("--config", default="gunicorn.conf.py", help="gunicorn config file")
    dev_parser.add_argument("--port", type=int, help="gateway port (default: $PORT, else 3100)")
    dev_parser.add_argument("--stub-port", type=int, default=launch.DEFAULT_STUB_PORT, help="stub port (default 3199)")
    dev_parser.set_defaults(handler=launch.dev)

    stub_parser = commands.add_parser("stub", help="run the local stub of OpenAI's images API")
    stub_parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    stub_parser.add_argument("--port", type=int, default=launch.DEFAULT_STUB_PORT, help="port (default 3199)")
    stub_parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before answering")
    stub_parser.set_defaults(handler=launch.stub)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="ziri-images", description="Run the ziri-images gateway, manage its keys, report spend from its "
                                        "ledger and check its catalog.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run_commands(commands)
    _add_keys_commands(commands)
    _add_report_command(commands)
    _add_ledger_commands(commands)
    _add_pricing_commands(commands)
    _add_db_commands(commands)
    return parser


def main(argv=None):
    """Run the command in ``argv`` (default: sys.argv); return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "keys":
            args.keys_file_path = run.setting(args, "keys_file", "KEYS_FILE")
        return args.handler(args) or 0
    except (run.CliError, ConfigError, keyfile.KeyFileError, db.DatabaseCommandError) as error:
        print(f"ziri-images: error: {error}", file=sys.stderr)
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"ziri-images: error: {where}{error.strerror or error}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
