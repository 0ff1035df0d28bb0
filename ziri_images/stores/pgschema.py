"""The PostgreSQL store's schema: numbered migrations, applied once each, in order.

``migrate(conninfo)`` is safe to run at every deploy (a Procfile ``release:`` line): it takes
an advisory lock, so two deploys never migrate at once, applies the migrations the database
has not seen in one transaction, and records each in ``schema_migrations``. A database that
is already current is left untouched.
"""

import psycopg
from psycopg.conninfo import conninfo_to_dict

# Any number, the same for every instance: the advisory lock that serialises migrations.
_MIGRATION_LOCK = 0x5A495249  # "ZIRI"

_INITIAL = """
CREATE TABLE ledger_records (
    -- The order records were written in: the export's order.
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts timestamptz NOT NULL,
    type text NOT NULL CHECK (type IN ('reservation', 'charge', 'reservation_expired')),
    request_id text NOT NULL,
    key_id text NOT NULL,
    user_id text,
    model text,
    -- The reservation's time: the budgets and the report count a request at it.
    reserved_at timestamptz NOT NULL,
    -- Integer micro-dollars: the reservation's amount, or the charge's / expiry's cost.
    micros bigint NOT NULL CHECK (micros >= 0),
    images integer,
    idempotency_key text,
    -- json, not jsonb: the record's text is kept as written, so an export gives back the file
    -- store's lines byte for byte (jsonb would reorder the fields).
    record json NOT NULL
);
-- At most one record of each type per request: a retried settle, a spooled charge written once
-- the database is back, or an import run twice can never charge (or reserve) a request twice.
CREATE UNIQUE INDEX ledger_records_one_per_request ON ledger_records (request_id, type);
CREATE INDEX ledger_records_ts ON ledger_records (ts);
CREATE INDEX ledger_records_settled ON ledger_records (reserved_at) WHERE type <> 'reservation';
-- The rate window and the idempotency look-up read only a key's recent reservations.
CREATE INDEX ledger_records_admissions ON ledger_records (key_id, ts) WHERE type = 'reservation';
CREATE INDEX ledger_records_idempotency ON ledger_records (key_id, idempotency_key, ts)
    WHERE type = 'reservation' AND idempotency_key IS NOT NULL;

-- One row per key, locked (SELECT ... FOR UPDATE) by every reserve and settle of that key: two
-- requests can never both see the budget free, the rate window open or an Idempotency-Key unused.
CREATE TABLE key_locks (
    key_id text PRIMARY KEY
);

-- Running totals per key and period ('YYYY-MM-DD', 'YYYY-MM'): O(1) budget checks at any ledger size.
-- Written only under the key's lock, in the transaction that writes the record they count.
CREATE TABLE key_periods (
    key_id text NOT NULL,
    period text NOT NULL,
    spent_micros bigint NOT NULL DEFAULT 0,
    requests integer NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, period)
);

-- Reservations not yet settled. The primary key rules out settling one reservation twice: the
-- charge and the expiry that race for it both DELETE the row, and only one finds it.
CREATE TABLE open_reservations (
    request_id text PRIMARY KEY,
    key_id text NOT NULL,
    micros bigint NOT NULL CHECK (micros >= 0),
    reserved_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    worker text NOT NULL
);
CREATE INDEX open_reservations_key ON open_reservations (key_id);
CREATE INDEX open_reservations_worker ON open_reservations (worker);

-- One row per gateway process, renewed while it lives (times on the database's clock, so hosts'
-- clocks never disagree). A reservation whose worker has no live lease belongs to a dead process.
CREATE TABLE worker_leases (
    worker text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
"""

# Refused requests per day, key and code: never in ledger_records (a refusal costs nothing, and a
# flood of them must not grow the ledger). Each process upserts its aggregated counts every few seconds.
_REFUSALS = """
CREATE TABLE refusal_counts (
    day date NOT NULL,
    key_id text NOT NULL,
    code text NOT NULL,
    refused bigint NOT NULL CHECK (refused >= 0),
    PRIMARY KEY (day, key_id, code)
);
"""

#: (version, name, SQL), in order. Never edit a released migration: add the next one.
MIGRATIONS = (
    (1, "ledger records, key locks, period totals, open reservations, worker leases", _INITIAL),
    (2, "refusal counts per day, key and code", _REFUSALS),
)
LATEST = MIGRATIONS[-1][0]

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


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


def schema_version(connection):
    """Return the highest migration applied to the database (0 for an empty one)."""
    exists = connection.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
    if not exists:
        return 0
    return connection.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(connection):
    """Apply every migration the database lacks; return the versions applied (empty when current)."""
    applied = []
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        connection.execute(_CREATE_TABLE)
        done = {row[0] for row in connection.execute("SELECT version FROM schema_migrations")}
        for version, name, sql in MIGRATIONS:
            if version in done:
                continue
            connection.execute(sql)
            connection.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            applied.append(version)
    return applied
