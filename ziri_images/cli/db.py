"""The database commands: ``db migrate`` and ``ledger import``.

``ziri-images db migrate`` runs at every deploy (the Procfile's ``release:`` line): it brings
the PostgreSQL schema up to date, does nothing on a current one, and with no database
configured (the file store) says so and succeeds.
"""

import os
import sys

from ..ledger.records import decode_line
from ..settings import load_settings


class DatabaseCommandError(Exception):
    """A database command that cannot be carried out; the CLI prints it and exits 1."""


def database_url(args):
    """Return the database URL given with --database-url, else the gateway's setting ('' for none)."""
    given = getattr(args, "database_url", None)
    return given.strip() if given else load_settings()["DATABASE_URL"]


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
        raise DatabaseCommandError(f"database {where}: {error_text(error)}") from None
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

    settings = load_settings()
    url = database_url(args)
    settings["DATABASE_URL"] = url
    if not url and not args.into_file_store:
        raise DatabaseCommandError("no database configured (ZIRI_DATABASE_URL, DATABASE_URL or --database-url): "
                                   "ledger import loads a JSONL ledger into PostgreSQL "
                                   "(--into-file-store appends it to ZIRI_LEDGER_PATH instead)")
    if not os.path.isfile(args.file):
        raise DatabaseCommandError(f"{args.file}: not found")
    store = open_store(settings)
    try:
        where = store.start()
        written, skipped = store.import_records(_values(args.file))
    finally:
        store.close()
    print(f"{where}\n{args.file}: imported {written} record(s); skipped {skipped} (already stored or not valid)",
          file=sys.stderr)
    return 0
