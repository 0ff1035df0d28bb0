"""The SQL of the PostgreSQL store, read from the package's .sql files, and the request path's statements.

Every decision runs while its transaction holds the key's row lock (``LOCK_KEY``), so the
reads that build a ``KeyUsage`` and the reservation that follows are one atomic step for that
key across every process and host. Reserve and settle are one statement each (``ziri_reserve``,
``ziri_settle_charge`` in functions/): one round trip, the lock held only inside the server.
"""

import re
from importlib.resources import files

_PACKAGE = files(__package__)


def scripts(folder):
    """Return [(file name, text)] of the .sql files in the package's ``folder``, in name order."""
    entries = (entry for entry in _PACKAGE.joinpath(folder).iterdir() if entry.name.endswith(".sql"))
    return sorted((entry.name, entry.read_text(encoding="utf-8")) for entry in entries)


def named(file):
    """Return {name: statement} of the package's ``file``, where each statement follows a ``-- name:`` line.

    The comments that open a statement say why it is written so; they stay in the file, not in the
    text sent (and logged) with every call.
    """
    parts = re.split(r"^-- name: (\w+)\n", _PACKAGE.joinpath(file).read_text(encoding="utf-8"), flags=re.M)
    return {name: re.sub(r"\A(?:--[^\n]*\n)+", "", text.strip()) for name, text in zip(parts[1::2], parts[2::2],
                                                                                       strict=True)}


_STATEMENTS = named("queries.sql")

LOCK_KEY = _STATEMENTS["lock_key"]
CREATE_KEY = _STATEMENTS["create_key"]
TAKE_STALE = _STATEMENTS["take_stale"]
TEAM_STALE_KEYS = _STATEMENTS["team_stale_keys"]
DATABASE_NOW = _STATEMENTS["database_now"]
KEYS_WITH_DEAD_WORKERS = _STATEMENTS["keys_with_dead_workers"]
RESERVE_MANY = _STATEMENTS["reserve_many"]
SETTLE_MANY = _STATEMENTS["settle_many"]
WRITE_SETTLEMENT = _STATEMENTS["write_settlement"]
OPEN_RESERVATION = _STATEMENTS["open_reservation"]
RENEW_LEASE = _STATEMENTS["renew_lease"]
FORGET_LEASES = _STATEMENTS["forget_leases"]
SESSION_TIMEOUTS = _STATEMENTS["session_timeouts"]
