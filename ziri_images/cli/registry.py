"""Which key store the ``keys`` and ``teams`` commands edit: the one the gateway reads.

With a database configured (``--database-url``, ``ZIRI_DATABASE_URL``, ``DATABASE_URL``) its
tables, else keys.json (``--keys-file``, ``ZIRI_KEYS_FILE``). A key file named with
``--keys-file`` is edited whatever the gateway uses. Every change is recorded as made by ``cli``.
"""

from ..config import Config
from ..keys.file_registry import FileKeyRegistry
from ..ledger.file.audit import AuditFile
from .options import database_url_option
from .options import keys_file_option

# Who the audit records name for a change made on the command line.
CLI_ACTOR = "cli"


def store_options(parser):
    """Add ``--keys-file`` and ``--database-url``: where the keys are, when not where the gateway's settings say."""
    keys_file_option(parser)
    database_url_option(parser)


def database_url_of(args, config):
    """Return the database a key command edits ('' for the key file)."""
    given = (getattr(args, "database_url", None) or "").strip()
    if given or getattr(args, "keys_file", None):
        return given
    return config.database_url


def key_registry(args):
    """Return (registry, where: the store named for messages) for the command's arguments and the settings."""
    config = Config.from_environ(read_providers=False)
    url = database_url_of(args, config)
    if url:
        # Imported only when used: commands on the key file never load the driver.
        from ..keys.postgres_registry import PostgresKeyRegistry
        from ..ledger.postgres.connection import command_transaction
        from ..ledger.postgres.connection import describe

        registry = PostgresKeyRegistry(lambda: command_transaction(url, config.database_timeout))
        return registry, f"database {describe(url)}"
    path = getattr(args, "keys_file", None) or config.keys_file
    # The audit record of a key file's changes sits beside the ledger the gateway keeps on this host.
    return FileKeyRegistry(path, AuditFile.beside(config.ledger_path)), path
