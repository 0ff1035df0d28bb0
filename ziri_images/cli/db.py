"""The database commands: ``db migrate`` and ``ledger import`` (wired in ``ledger.py``).

``ziri-images db migrate`` runs at every deploy (the Procfile's ``release:`` line): it brings
the PostgreSQL schema up to date, does nothing on a current one, and with no database
configured (the file store) says so and succeeds.
"""

import os
import sys
from dataclasses import replace

from ..config import Config
from ..ledger.parse import decode_line
from .errors import CliError
from .options import database_url_option


def add_commands(commands):
    """Add ``db migrate`` to the command line."""
    database = commands.add_parser("db", help="the PostgreSQL store's schema")
    actions = database.add_subparsers(dest="action", required=True, metavar="ACTION")
    migrate = actions.add_parser(
        "migrate", help="create or upgrade the database schema (safe at every deploy)",
        description="Apply the schema migrations the database lacks; a current schema is left as it is. "
                    "With no database configured (the file store) there is nothing to do: exits 0.")
    database_url_option(migrate)
    migrate.add_argument("--timeout", type=float, default=10.0, help="seconds to connect (default 10)")
    migrate.set_defaults(handler=db_migrate)


def database_url(args):
    """Return the database URL given with --database-url, else the gateway's setting ('' for none)."""
    given = getattr(args, "database_url", None)
    return given.strip() if given else Config.from_environ(read_providers=False).database_url


def db_migrate(args):
    # Imported here: the other commands (and gunicorn's master, before gevent patches) never load the driver.
    import psycopg

    from ..ledger.postgres.connection import connect
    from ..ledger.postgres.connection import describe
    from ..ledger.postgres.connection import error_text
    from ..ledger.postgres.migrate import LATEST
    from ..ledger.postgres.migrate import migrate

    url = database_url(args)
    if not url:
        print("no database configured (ZIRI_DATABASE_URL or DATABASE_URL): the file ledger needs no migration",
              file=sys.stderr)
        return 0
    where = describe(url)
    try:
        with connect(url, args.timeout) as connection:
            applied = migrate(connection)
    except psycopg.Error as error:
        raise CliError(f"database {where}: {error_text(error)}") from None
    if applied:
        print(f"database {where}: applied {', '.join(applied)}; schema version {LATEST}", file=sys.stderr)
    else:
        print(f"database {where}: schema version {LATEST}, already current", file=sys.stderr)
    return 0


def _values(path):
    """Yield the JSON value of every line of the JSONL file at ``path`` (None for an unparsable line)."""
    with open(path, "rb") as file:
        for line in file:
            if not line.strip():
                continue
            try:
                yield decode_line(line)
            except (ValueError, RecursionError):
                yield None  # counted as skipped, and logged, by the store's validation


def ledger_import(args):
    """Load a JSONL ledger into the configured store; records already there are skipped, so a rerun writes nothing."""
    from ..gateway import open_store

    url = database_url(args)
    config = replace(Config.from_environ(read_providers=False), database_url=url)
    if not url and not args.into_file_store:
        raise CliError("no database configured (ZIRI_DATABASE_URL, DATABASE_URL or --database-url): "
                                   "ledger import loads a JSONL ledger into PostgreSQL "
                                   "(--into-file-store appends it to ZIRI_LEDGER_PATH instead)")
    if not os.path.isfile(args.file):
        raise CliError(f"{args.file}: not found")
    store = open_store(config)
    try:
        where = store.start()
        written, skipped = store.import_records(_values(args.file))
    finally:
        store.close()
    print(f"{where}\n{args.file}: imported {written} record(s); skipped {skipped} (already stored or not valid)",
          file=sys.stderr)
    return 0
