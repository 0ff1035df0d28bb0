"""The PostgreSQL server the tests use: a database of their own per test run.

The server is found through ``ZIRI_TEST_DATABASE_URL`` (default: the project machines' server,
``postgresql://postgres@127.0.0.1:5432/test``). Each run creates a database with a random name,
migrates it, and drops it at the end, so concurrent runs (other suites on the same server)
cannot collide; each test starts from empty tables.

The database's clock decides expiries and rate windows for every host (``ziri_now()``, in
ziri_images/ledger/postgres/functions/). In the test database it can follow a test's clock instead:
``follow(clock)`` sets it from a ``FakeClock`` now and whenever that clock moves; emptied, the
database keeps its real clock. The leases stay on the real clock (they judge whether processes are alive).

With no server reachable the tests that need one are skipped, all with one reason; with
``ZIRI_TEST_REQUIRE_DATABASE=1`` (``.ci/run`` sets it) they fail instead.

That server is shared: no test stops, restarts or reconfigures it. A test that needs a server
to go away (a restart, an outage) starts a ``ThrowawayCluster`` of its own instead
(tests/throwaway_cluster.py).
"""

import json
import os
import secrets

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ziri_images.keys.postgres import SQL as KEY_SQL
from ziri_images.keys.rows import key_row
from ziri_images.keys.rows import team_row
from ziri_images.keys.store import parse_key_document
from ziri_images.ledger.postgres.connection import describe
from ziri_images.ledger.postgres.migrate import migrate
from ziri_images.ledger.postgres.sql import RENEW_LEASE

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
KEY_TABLES = ("api_keys", "teams", "key_tombstones", "audit_records")
TABLES = ("ledger_records", "key_locks", "key_periods", "open_reservations", "worker_leases", "refusal_counts",
          "team_locks", "team_periods", "end_user_days", "budget_alerts", "test_clock", *KEY_TABLES)
# The test database's clock: the time a test set, else the real one (as ziri_now() reads in production).
TEST_CLOCK = """
CREATE TABLE test_clock (now timestamptz NOT NULL);
CREATE OR REPLACE FUNCTION ziri_now() RETURNS timestamptz LANGUAGE sql VOLATILE AS
    'SELECT coalesce((SELECT max(now) FROM test_clock), clock_timestamp())';
"""


def server_url():
    return os.environ.get("ZIRI_TEST_DATABASE_URL") or DEFAULT_URL


def database_required():
    return os.environ.get("ZIRI_TEST_REQUIRE_DATABASE", "").strip().lower() in ("1", "true", "yes")


class TestDatabase:
    """A database created for this run on the test server."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, server=None):
        self.server = server or server_url()
        self.name = f"ziri_test_{secrets.token_hex(6)}"
        self.url = make_conninfo(self.server, dbname=self.name)
        with psycopg.connect(self.server, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')
        with psycopg.connect(self.url, autocommit=True) as connection:
            migrate(connection)
            connection.execute(TEST_CLOCK)

    def connect(self):
        return psycopg.connect(self.url, autocommit=True, connect_timeout=5)

    def empty(self):
        """Remove every row (the schema stays); the key version moves on, as after any change of the keys."""
        with self.connect() as connection, connection.transaction():
            connection.execute(f"TRUNCATE {', '.join(TABLES)}")
            connection.execute(KEY_SQL["bump_version"])

    def load_keys(self, path):
        """Make the database's keys and teams exactly those of the key file at ``path`` (no audit records).

        A test's set-up, as writing keys.json is for the file store: the tests written against
        keys.json run on the database's key store unchanged. (An operator imports: ``keys import``.)
        """
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
        parse_key_document(document, path)
        with self.connect() as connection, connection.transaction():
            connection.execute(KEY_SQL["lock_keys"])
            connection.execute(f"TRUNCATE {', '.join(KEY_TABLES[:3])}")
            for team_id, team in (document.get("teams") or {}).items():
                connection.execute(KEY_SQL["insert_team"], team_row({"id": team_id, **team}))
            for record in document["keys"]:
                connection.execute(KEY_SQL["insert_key"], key_row(record))
            connection.execute(KEY_SQL["bump_version"])

    def follow(self, clock):
        """Make the database's clock show ``clock``'s time, now and whenever it moves."""
        def set_now(moment):
            with self.connect() as connection, connection.transaction():
                connection.execute("DELETE FROM test_clock")
                connection.execute("INSERT INTO test_clock (now) VALUES (%s)", (moment,))

        set_now(clock())
        clock.followers.append(set_now)

    def keep_alive(self, workers, seconds=3600):
        """Give ``workers`` live leases, as running gateway processes would keep."""
        with self.connect() as connection:
            for worker in workers:
                connection.execute(RENEW_LEASE, {"worker": worker, "seconds": seconds})

    def records(self):
        """Return every record, in the order written."""
        with self.connect() as connection:
            return [row[0] for row in connection.execute("SELECT record FROM ledger_records ORDER BY id")]

    def drop(self):
        with psycopg.connect(self.server, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


UNREACHABLE = "PostgreSQL is not reachable"


def skip_reason():
    return f"{UNREACHABLE} at {describe(server_url())} (set ZIRI_TEST_DATABASE_URL)"


def open_test_database():
    """Return a new TestDatabase, or skip (fail, when required) with one reason if the server is unreachable."""
    try:
        return TestDatabase()
    except psycopg.OperationalError as error:
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if database_required():
        pytest.fail(f"{UNREACHABLE} at {describe(server_url())}: {detail} (ZIRI_TEST_REQUIRE_DATABASE is set)",
                    pytrace=False)
    pytest.skip(skip_reason())

