"""Name a database without its secrets, word its errors in one line, open a command's connection."""

from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ...errors import ConfigError


def describe(conninfo):
    """Return ``host:port/dbname`` for ``conninfo``: never its password or other parameters."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "(an unparsable database URL)"
    return f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


def error_text(error):
    """Return the first line of a driver error (libpq's hints follow on further lines)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def connect(conninfo, timeout):
    """Open one connection (autocommit) for a command or a start-up check."""
    return psycopg.connect(conninfo, autocommit=True, connect_timeout=max(1, round(timeout)))


@contextmanager
def command_transaction(conninfo, timeout):
    """Yield a cursor in one transaction on a command's own connection; a database fault is a ConfigError naming it."""
    try:
        with connect(conninfo, timeout) as connection, connection.transaction(), connection.cursor() as cursor:
            yield cursor
    except psycopg.errors.UndefinedTable as error:
        raise ConfigError(f"database {describe(conninfo)}: {error_text(error)}: run 'ziri-images db migrate'") from None
    except psycopg.Error as error:
        raise ConfigError(f"database {describe(conninfo)}: {error_text(error)}") from None
