"""The database as the key source: every process keeps the keys in memory and checks the database's key version.

With PostgreSQL configured, the keys and teams live in its ``api_keys`` and ``teams`` tables
(migrations/002_keys.sql), the one key store every gateway reads. A request looks its key up in
this process's copy, a dict by hash: no query. Every change (``postgres_registry.py``) bumps
``key_store_version`` in its own transaction; at most every ``refresh_seconds`` one request of
each process reads that row (one indexed row, one round trip) and, when it moved, reloads every
key. Requests meanwhile use the copy they have; a change therefore reaches every process of every
host within ``refresh_seconds`` plus one reload (bench/key_propagation.py measures it), and the
process that made it at once (``changed``). ``refresh_seconds = 0`` checks on every request.

Why not LISTEN/NOTIFY: a listening connection per process, kept open past gunicorn's fork and
re-established after every database restart, with changes missed while it is down unless the
version is read anyway; the version check alone is simpler, and once a second it costs nothing.

The database away: the keys loaded stay in service (a request is then refused by its
reservation, 503); a process that has never loaded them answers 503 ``KEYS_UNAVAILABLE``.
"""

import logging
import math
import threading
import time

import psycopg

from ..errors import ApiError
from ..errors import ConfigError
from ..ledger.postgres.connection import connect
from ..ledger.postgres.connection import describe
from ..ledger.postgres.connection import error_text
from ..ledger.postgres.sql import named
from .base import KeySource
from .rows import key_record
from .rows import team_record
from .store import parse_key_record
from .store import parse_team_record

log = logging.getLogger("ziri_images")

SQL = named("keys.sql")


def keys_unavailable():
    return ApiError(503, "KEYS_UNAVAILABLE", "The key store is not reachable yet; retry shortly.", should_retry=True)


def load_keys(cursor):
    """Return (version, {hash: ApiKey}) as the database holds them; a row that does not parse is logged and left out."""
    version = cursor.execute(SQL["key_version"]).fetchone()[0]
    teams = {}
    for row in cursor.execute(SQL["select_teams"]).fetchall():
        record = team_record(row)
        try:
            teams[record["id"]] = parse_team_record(record["id"], record, f"team {record['id']}")
        except ConfigError as error:
            log.error("keys: %s: left out", error)
    keys = {}
    for row in cursor.execute(SQL["select_keys"], {"user": None, "team": None}).fetchall():
        record = key_record(row)
        try:
            key_hash, key = parse_key_record(record, f"key {record['id']}", teams)
        except ConfigError as error:
            log.error("keys: %s: left out", error)
            continue
        keys[key_hash] = key
    return version, keys


class PostgresKeySource(KeySource):
    """This process's copy of the database's keys, reloaded when the key version moves."""

    def __init__(self, database, conninfo, timeout, refresh_seconds):
        self.database = database  # the store's DatabasePool: a pool per process, opened after the fork
        self.conninfo = conninfo
        self.timeout = timeout
        self.refresh_seconds = refresh_seconds
        self._keys = None  # {hash: ApiKey}, None until loaded
        self._version = None
        self._due = -math.inf  # monotonic time of the next version check
        self._reload_lock = threading.Lock()
        self._failing = False

    def start(self):
        """Load the keys with a short-lived connection (the master must not keep one past gunicorn's fork)."""
        where = describe(self.conninfo)
        try:
            with connect(self.conninfo, self.timeout) as connection, connection.transaction():
                self._version, self._keys = load_keys(connection.cursor())
        except psycopg.Error as error:
            log.warning("keys: database %s not reachable at start-up: %s", where, error_text(error))
            return f"keys: database {where} not reachable yet"
        self._due = time.monotonic() + self.refresh_seconds
        return f"keys: {len(self._keys)} from database {where} (version {self._version})"

    @property
    def count(self):
        """Return how many keys are loaded (None before the first load)."""
        return None if self._keys is None else len(self._keys)

    def find(self, key_hash):
        return self.refresh().get(key_hash)

    def refresh(self):
        now = time.monotonic()
        if now >= self._due:
            self._due = now + self.refresh_seconds  # claimed: the others use the copy they have meanwhile
            self._check()
        if self._keys is None:
            raise keys_unavailable()
        return self._keys

    def changed(self):
        self._due = -math.inf
        self.refresh()

    def readiness(self):
        try:
            self.refresh()
        except ApiError:
            return "the keys could not be read from the database"
        return None

    def _check(self):
        """Read the key version; reload the keys when it moved. A database fault keeps the copy in service."""
        try:
            version = self.database.call(SQL["key_version"], {})[0][0]
            if version != self._version:
                with self._reload_lock:  # one reload at a time; the others who saw the change wait for it
                    if version != self._version:
                        with self.database.transaction() as cursor:
                            self._version, self._keys = load_keys(cursor)
        except ApiError:
            if not self._failing:
                log.warning("keys: the database did not answer; the keys loaded stay in service until it does")
            self._failing = True
            return
        if self._failing:
            log.info("keys: the database answers again (version %s)", self._version)
        self._failing = False
