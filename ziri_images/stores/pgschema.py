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

# The request path's two calls, each ONE round trip of decisions made in the database:
# reserve's first call (lock, stale reservations, usage) and settle's whole transaction. Inside
# a VOLATILE function every statement takes a fresh snapshot (READ COMMITTED), so what follows
# the lock sees every transaction that committed before the lock was granted; one plain
# statement would read the snapshot taken before it waited (a lost update).
_REQUEST_PATH_FUNCTIONS = """
CREATE FUNCTION ziri_reserve_begin(
    p_key text, p_now timestamptz, p_digest text, p_rate_window interval, p_idempotency_window interval,
    OUT o_now timestamptz, OUT o_spent_day bigint, OUT o_spent_month bigint, OUT o_requests_day integer,
    OUT o_requests_month integer, OUT o_held_day bigint, OUT o_held_month bigint, OUT o_in_flight bigint,
    OUT o_window float8[], OUT o_same text, OUT o_same_open boolean, OUT o_stale_ids text[],
    OUT o_stale_micros bigint[], OUT o_stale_reserved timestamptz[], OUT o_stale_expires timestamptz[],
    OUT o_stale_workers text[])
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_utc timestamp;
    v_day text;
    v_month text;
    v_day_start timestamptz;
    v_month_start timestamptz;
BEGIN
    -- The key's row lock until the caller's transaction ends (the first request creates the row).
    INSERT INTO key_locks (key_id) VALUES (p_key) ON CONFLICT (key_id) DO NOTHING;
    PERFORM 1 FROM key_locks WHERE key_id = p_key FOR UPDATE;
    -- The caller's clock was read before the lock: never earlier than the key's last reservation,
    -- so a key's records stay in time order.
    SELECT greatest(p_now, max(ts)) INTO o_now FROM ledger_records WHERE type = 'reservation' AND key_id = p_key;
    v_utc := o_now AT TIME ZONE 'UTC';
    v_day := to_char(v_utc, 'YYYY-MM-DD');
    v_month := to_char(v_utc, 'YYYY-MM');
    v_day_start := date_trunc('day', v_utc) AT TIME ZONE 'UTC';
    v_month_start := date_trunc('month', v_utc) AT TIME ZONE 'UTC';
    -- Stale reservations leave the open set (the caller writes their expiry records in this
    -- transaction): past their expiry, or held by a process whose lease has lapsed.
    WITH stale AS (
        DELETE FROM open_reservations r
        WHERE r.key_id = p_key
          AND (r.expires_at <= o_now
               OR NOT EXISTS (SELECT 1 FROM worker_leases l
                              WHERE l.worker = r.worker AND l.expires_at > clock_timestamp()))
        RETURNING r.request_id, r.micros, r.reserved_at, r.expires_at, r.worker
    )
    SELECT array_agg(request_id), array_agg(micros), array_agg(reserved_at), array_agg(expires_at),
           array_agg(worker),
           coalesce(sum(micros) FILTER (WHERE reserved_at >= v_day_start), 0),
           coalesce(sum(micros) FILTER (WHERE reserved_at >= v_month_start), 0)
      INTO o_stale_ids, o_stale_micros, o_stale_reserved, o_stale_expires, o_stale_workers,
           o_spent_day, o_spent_month
      FROM stale;
    -- Everything else the checks need in ONE statement, so it reads one snapshot: a settle (which
    -- takes no key lock) committing between two reads could be seen half (its reservation gone,
    -- its charge not yet). The stale amounts are spent from now on (their expiries add them to key_periods).
    SELECT o_spent_day + coalesce((SELECT spent_micros FROM key_periods
                                    WHERE key_id = p_key AND period = v_day), 0),
           o_spent_month + coalesce((SELECT spent_micros FROM key_periods
                                      WHERE key_id = p_key AND period = v_month), 0),
           coalesce((SELECT requests FROM key_periods WHERE key_id = p_key AND period = v_day), 0),
           coalesce((SELECT requests FROM key_periods WHERE key_id = p_key AND period = v_month), 0),
           held.day, held.month, held.count,
           (SELECT coalesce(array_agg(extract(epoch FROM ts)::float8 ORDER BY ts), '{}')
              FROM ledger_records WHERE type = 'reservation' AND key_id = p_key AND ts > o_now - p_rate_window),
           same.request_id,
           same.request_id IN (SELECT request_id FROM open_reservations WHERE key_id = p_key)
      INTO o_spent_day, o_spent_month, o_requests_day, o_requests_month, o_held_day, o_held_month, o_in_flight,
           o_window, o_same, o_same_open
      FROM (SELECT coalesce(sum(micros) FILTER (WHERE reserved_at >= v_day_start), 0)::bigint,
                   coalesce(sum(micros) FILTER (WHERE reserved_at >= v_month_start), 0)::bigint, count(*)
              FROM open_reservations WHERE key_id = p_key) AS held (day, month, count)
      LEFT JOIN LATERAL (
           SELECT request_id FROM ledger_records
            WHERE p_digest IS NOT NULL AND type = 'reservation' AND key_id = p_key AND idempotency_key = p_digest
              AND ts > o_now - p_idempotency_window
            ORDER BY ts DESC LIMIT 1) AS same ON true;
END $$;

-- Settle a reservation with its charge: p_record if it was still open, else p_record_after_expiry
-- (which replaces the expiry's amount). The open row decides a charge/expiry race: both DELETE
-- it and only one finds it; the other waits for that one's commit, then reads its expiry. The
-- unique (request_id, type) index stores (and counts) a charge written twice once.
-- Return whether the reservation was still open.
CREATE FUNCTION ziri_settle_charge(
    p_request_id text, p_key text, p_user text, p_model text, p_reserved_at timestamptz, p_ts timestamptz,
    p_micros bigint, p_images integer, p_record json, p_record_after_expiry json, p_day text, p_month text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_open boolean;
    v_expired bigint := 0;
BEGIN
    DELETE FROM open_reservations WHERE request_id = p_request_id;
    v_open := FOUND;
    IF NOT v_open THEN
        SELECT coalesce(max(micros), 0) INTO v_expired FROM ledger_records
         WHERE request_id = p_request_id AND type = 'reservation_expired';
    END IF;
    INSERT INTO ledger_records (ts, type, request_id, key_id, user_id, model, reserved_at, micros, images, record)
    VALUES (p_ts, 'charge', p_request_id, p_key, p_user, p_model, p_reserved_at, p_micros, p_images,
            CASE WHEN v_open THEN p_record ELSE p_record_after_expiry END)
    ON CONFLICT (request_id, type) DO NOTHING;
    IF FOUND THEN
        INSERT INTO key_periods (key_id, period, spent_micros)
        VALUES (p_key, p_day, p_micros - v_expired), (p_key, p_month, p_micros - v_expired)
        ON CONFLICT (key_id, period) DO UPDATE SET spent_micros = key_periods.spent_micros + EXCLUDED.spent_micros;
    END IF;
    RETURN v_open;
END $$;
"""

#: (version, name, SQL), in order. Never edit a released migration: add the next one.
MIGRATIONS = (
    (1, "ledger records, key locks, period totals, open reservations, worker leases", _INITIAL),
    (2, "request path functions: ziri_reserve_begin, ziri_settle_charge", _REQUEST_PATH_FUNCTIONS),
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
