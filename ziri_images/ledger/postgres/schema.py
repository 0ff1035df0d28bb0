"""The PostgreSQL store's schema: numbered migrations, applied once each, in order.

``migrate(conninfo)`` is safe to run at every deploy (a Procfile ``release:`` line): it takes
an advisory lock, so two deploys never migrate at once, applies the migrations the database
has not seen in one transaction, and records each in ``schema_migrations``. A database that
is already current is left untouched.
"""

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .clock import DATABASE_CLOCK

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

# The request path in O(1) of the key's history and requests in flight, each call ONE statement
# (its own transaction, one round trip): running counters instead of scans (the key's open
# reservations and held amounts, the admission ordinal that makes the rate window two index
# look-ups), and ziri_reserve, which locks, checks, inserts and returns in one call.
_COUNTERS = """
ALTER TABLE key_locks ADD COLUMN admitted bigint NOT NULL DEFAULT 0,
                      ADD COLUMN in_flight integer NOT NULL DEFAULT 0,
                      ADD COLUMN last_reserved_at timestamptz;
ALTER TABLE key_periods ADD COLUMN held_micros bigint NOT NULL DEFAULT 0;
-- A reservation's ordinal among its key's reservations (1, 2, ...), in time order.
ALTER TABLE ledger_records ADD COLUMN admission bigint;
CREATE INDEX ledger_records_admission_order ON ledger_records (key_id, ts, admission) WHERE type = 'reservation';
DROP INDEX ledger_records_admissions;
CREATE INDEX open_reservations_key_expiry ON open_reservations (key_id, expires_at);
DROP INDEX open_reservations_key;
CREATE INDEX open_reservations_worker_key ON open_reservations (worker, key_id);
DROP INDEX open_reservations_worker;

-- Recompute the counters of p_keys from their records and open reservations (this migration,
-- and after an import). The caller holds the keys' locks.
CREATE FUNCTION ziri_rebuild_counters(p_keys text[]) RETURNS void LANGUAGE sql VOLATILE AS $f$
    UPDATE ledger_records r SET admission = n.admission
      FROM (SELECT id, row_number() OVER (PARTITION BY key_id ORDER BY ts, id) AS admission FROM ledger_records
             WHERE type = 'reservation' AND key_id = ANY(p_keys)) n
     WHERE r.id = n.id AND r.admission IS DISTINCT FROM n.admission;
    UPDATE key_locks k SET admitted = coalesce(s.admitted, 0), last_reserved_at = s.last,
                           in_flight = (SELECT count(*) FROM open_reservations o WHERE o.key_id = k.key_id)
      FROM (SELECT keys.key_id, count(r.id) AS admitted, max(r.ts) AS last FROM unnest(p_keys) AS keys (key_id)
              LEFT JOIN ledger_records r ON r.key_id = keys.key_id AND r.type = 'reservation'
             GROUP BY keys.key_id) s
     WHERE k.key_id = s.key_id;
    UPDATE key_periods SET held_micros = 0 WHERE key_id = ANY(p_keys);
    INSERT INTO key_periods (key_id, period, held_micros)
    SELECT key_id, period, sum(micros) FROM open_reservations,
           unnest(ARRAY[to_char(reserved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                        to_char(reserved_at AT TIME ZONE 'UTC', 'YYYY-MM')]) AS period
     WHERE key_id = ANY(p_keys) GROUP BY key_id, period
    ON CONFLICT (key_id, period) DO UPDATE SET held_micros = EXCLUDED.held_micros;
$f$;

INSERT INTO key_locks (key_id) SELECT DISTINCT key_id FROM ledger_records ON CONFLICT (key_id) DO NOTHING;
SELECT ziri_rebuild_counters(array_agg(key_id)) FROM key_locks;
DROP FUNCTION ziri_reserve_begin(text, timestamptz, text, interval, interval);

-- Reserve (or, with p_micros NULL, read the usage) in one call: lock the key's row, read its
-- counters, run the checks, insert the reservation. o_state: 'admitted'; 'refused' (nothing
-- written: the caller's checks.run_checks says why, from the usage returned); 'usage'; or
-- 'stale': the key holds reservations past their expiry or of a process whose lease lapsed,
-- nothing was read or written, and the caller settles them (their records are built in Python)
-- and calls again. The usage returned is the key's before this reservation.
-- The refusal below is checks.CHECKS as one predicate (a NULL limit is no limit); the limits
-- suites run against both stores, so the two cannot drift apart unseen.
CREATE FUNCTION ziri_reserve(
    p_key text, p_user text, p_model text, p_request_id text, p_now timestamptz, p_expires_at timestamptz,
    p_micros bigint, p_digest text, p_worker text, p_record text, p_rate_window interval,
    p_idempotency_window interval, p_rpm float8, p_max_concurrent float8, p_daily bigint, p_monthly bigint,
    OUT o_state text, OUT o_now timestamptz, OUT o_spent_day bigint, OUT o_spent_month bigint,
    OUT o_requests_day bigint, OUT o_requests_month bigint, OUT o_held_day bigint, OUT o_held_month bigint,
    OUT o_in_flight integer, OUT o_window_count bigint, OUT o_window_first float8, OUT o_same text,
    OUT o_same_open boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_format constant text := 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"';  -- records.format_ts
    v_admitted bigint;
    v_last timestamptz;
    v_day text;
    v_month text;
    v_first timestamptz;
    v_first_admission bigint;
    v_expires timestamptz;
    v_record text := p_record;
BEGIN
    -- The key's row lock until this call's transaction ends (the first request creates the row).
    -- Every statement below takes a fresh snapshot (READ COMMITTED, VOLATILE): it sees every
    -- transaction that committed before the lock was granted.
    SELECT admitted, in_flight, last_reserved_at INTO v_admitted, o_in_flight, v_last
      FROM key_locks WHERE key_id = p_key FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO key_locks (key_id) VALUES (p_key) ON CONFLICT (key_id) DO NOTHING;
        SELECT admitted, in_flight, last_reserved_at INTO v_admitted, o_in_flight, v_last
          FROM key_locks WHERE key_id = p_key FOR UPDATE;
    END IF;
    -- The caller's clock was read before the lock: never earlier than the key's last
    -- reservation, so a key's records (and admission ordinals) stay in time order.
    o_now := greatest(p_now, v_last);
    IF EXISTS (SELECT 1 FROM open_reservations WHERE key_id = p_key AND expires_at <= o_now)
       OR EXISTS (SELECT 1 FROM worker_leases l
                   WHERE l.expires_at <= clock_timestamp()
                     -- OFFSET 0 keeps this a probe per lapsed lease (a few rows), never a scan
                     -- of the key's open reservations (as many as it has in flight).
                     AND EXISTS (SELECT 1 FROM open_reservations r
                                  WHERE r.worker = l.worker AND r.key_id = p_key OFFSET 0))
    THEN
        o_state := 'stale';
        RETURN;
    END IF;
    v_day := to_char(o_now AT TIME ZONE 'UTC', 'YYYY-MM-DD');
    v_month := to_char(o_now AT TIME ZONE 'UTC', 'YYYY-MM');
    SELECT coalesce(sum(spent_micros) FILTER (WHERE period = v_day), 0),
           coalesce(sum(spent_micros) FILTER (WHERE period = v_month), 0),
           coalesce(sum(requests) FILTER (WHERE period = v_day), 0),
           coalesce(sum(requests) FILTER (WHERE period = v_month), 0),
           coalesce(sum(held_micros) FILTER (WHERE period = v_day), 0),
           coalesce(sum(held_micros) FILTER (WHERE period = v_month), 0)
      INTO o_spent_day, o_spent_month, o_requests_day, o_requests_month, o_held_day, o_held_month
      FROM key_periods WHERE key_id = p_key AND period IN (v_day, v_month);
    -- The rate window: its first admission, and the ordinals count the rest.
    SELECT ts, admission INTO v_first, v_first_admission FROM ledger_records
     WHERE type = 'reservation' AND key_id = p_key AND ts > o_now - p_rate_window
     ORDER BY ts, admission LIMIT 1;
    o_window_first := extract(epoch FROM v_first)::float8;
    o_window_count := CASE WHEN v_first IS NULL THEN 0 ELSE v_admitted - v_first_admission + 1 END;
    IF v_first IS NOT NULL AND v_first_admission IS NULL THEN  -- never after this migration: count them
        SELECT count(*) INTO o_window_count FROM ledger_records
         WHERE type = 'reservation' AND key_id = p_key AND ts > o_now - p_rate_window;
    END IF;
    IF p_digest IS NOT NULL THEN
        SELECT request_id INTO o_same FROM ledger_records
         WHERE type = 'reservation' AND key_id = p_key AND idempotency_key = p_digest
           AND ts > o_now - p_idempotency_window
         ORDER BY ts DESC LIMIT 1;
        IF o_same IS NOT NULL THEN
            o_same_open := EXISTS (SELECT 1 FROM open_reservations WHERE request_id = o_same);
        END IF;
    END IF;
    IF p_micros IS NULL THEN
        o_state := 'usage';
        RETURN;
    END IF;
    IF o_same IS NOT NULL
       OR (p_rpm IS NOT NULL AND o_window_count >= p_rpm)
       OR (p_max_concurrent IS NOT NULL AND o_in_flight >= p_max_concurrent)
       OR (p_daily IS NOT NULL AND o_spent_day + o_held_day + p_micros > p_daily)
       OR (p_monthly IS NOT NULL AND o_spent_month + o_held_month + p_micros > p_monthly)
    THEN
        o_state := 'refused';
        RETURN;
    END IF;
    v_expires := o_now + (p_expires_at - p_now);
    IF o_now <> p_now THEN
        -- Moved past the key's last reservation: the record says so. ts is the record's first
        -- field; JSON escapes a quote inside a string, so these texts can only be the fields.
        v_record := replace(replace(v_record,
            '{"ts":"' || to_char(p_now AT TIME ZONE 'UTC', v_format) || '"',
            '{"ts":"' || to_char(o_now AT TIME ZONE 'UTC', v_format) || '"'),
            ',"expiresAt":"' || to_char(p_expires_at AT TIME ZONE 'UTC', v_format) || '"',
            ',"expiresAt":"' || to_char(v_expires AT TIME ZONE 'UTC', v_format) || '"');
    END IF;
    INSERT INTO ledger_records (ts, type, request_id, key_id, user_id, model, reserved_at, micros, idempotency_key,
                                admission, record)
    VALUES (o_now, 'reservation', p_request_id, p_key, p_user, p_model, o_now, p_micros, p_digest, v_admitted + 1,
            v_record::json);
    INSERT INTO open_reservations (request_id, key_id, micros, reserved_at, expires_at, worker)
    VALUES (p_request_id, p_key, p_micros, o_now, v_expires, p_worker);
    UPDATE key_locks SET admitted = admitted + 1, in_flight = in_flight + 1, last_reserved_at = o_now
     WHERE key_id = p_key;
    INSERT INTO key_periods (key_id, period, requests, held_micros)
    VALUES (p_key, v_day, 1, p_micros), (p_key, v_month, 1, p_micros)
    ON CONFLICT (key_id, period) DO UPDATE SET requests = key_periods.requests + 1,
                                               held_micros = key_periods.held_micros + EXCLUDED.held_micros;
    o_state := 'admitted';
END $$;

-- Settle: as in migration 3, and the key's counters follow. The key's row is locked first, in
-- the order ziri_reserve and the expiries take their locks (key_locks, then key_periods), so a
-- charge racing an expiry of its reservation cannot deadlock with it.
CREATE OR REPLACE FUNCTION ziri_settle_charge(
    p_request_id text, p_key text, p_user text, p_model text, p_reserved_at timestamptz, p_ts timestamptz,
    p_micros bigint, p_images integer, p_record json, p_record_after_expiry json, p_day text, p_month text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_held bigint;
    v_open boolean;
    v_expired bigint := 0;
    v_written boolean;
BEGIN
    PERFORM 1 FROM key_locks WHERE key_id = p_key FOR UPDATE;
    DELETE FROM open_reservations WHERE request_id = p_request_id RETURNING micros INTO v_held;
    v_open := FOUND;
    IF v_open THEN
        UPDATE key_locks SET in_flight = in_flight - 1 WHERE key_id = p_key;
    ELSE
        SELECT coalesce(max(micros), 0) INTO v_expired FROM ledger_records
         WHERE request_id = p_request_id AND type = 'reservation_expired';
    END IF;
    INSERT INTO ledger_records (ts, type, request_id, key_id, user_id, model, reserved_at, micros, images, record)
    VALUES (p_ts, 'charge', p_request_id, p_key, p_user, p_model, p_reserved_at, p_micros, p_images,
            CASE WHEN v_open THEN p_record ELSE p_record_after_expiry END)
    ON CONFLICT (request_id, type) DO NOTHING;
    v_written := FOUND;
    IF v_written OR v_open THEN
        INSERT INTO key_periods (key_id, period, spent_micros, held_micros)
        VALUES (p_key, p_day, CASE WHEN v_written THEN p_micros - v_expired ELSE 0 END, -coalesce(v_held, 0)),
               (p_key, p_month, CASE WHEN v_written THEN p_micros - v_expired ELSE 0 END, -coalesce(v_held, 0))
        ON CONFLICT (key_id, period) DO UPDATE SET spent_micros = key_periods.spent_micros + EXCLUDED.spent_micros,
                                                   held_micros = key_periods.held_micros + EXCLUDED.held_micros;
    END IF;
    RETURN v_open;
END $$;

-- Group commit (pgbatch.py): the calls queued for one key in a process, decided one by one in
-- their order, in one transaction (one lock, one WAL flush). p_batch: a JSON array of the
-- single call's arguments.
CREATE FUNCTION ziri_reserve_many(p_batch json, p_rate_window interval, p_idempotency_window interval)
RETURNS TABLE (r_state text, r_now timestamptz, r_spent_day bigint, r_spent_month bigint, r_requests_day bigint,
               r_requests_month bigint, r_held_day bigint, r_held_month bigint, r_in_flight integer,
               r_window_count bigint, r_window_first float8, r_same text, r_same_open boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v json;
BEGIN
    FOR v IN SELECT value FROM json_array_elements(p_batch) WITH ORDINALITY ORDER BY ordinality LOOP
        RETURN QUERY SELECT * FROM ziri_reserve(
            v->>'key', v->>'user', v->>'model', v->>'request_id', (v->>'now')::timestamptz,
            (v->>'expires_at')::timestamptz, (v->>'micros')::bigint, v->>'digest', v->>'worker', v->>'record',
            p_rate_window, p_idempotency_window, (v->>'rpm')::float8, (v->>'max_concurrent')::float8,
            (v->>'daily')::bigint, (v->>'monthly')::bigint);
    END LOOP;
END $$;

CREATE FUNCTION ziri_settle_many(p_batch json) RETURNS SETOF boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v json;
BEGIN
    FOR v IN SELECT value FROM json_array_elements(p_batch) WITH ORDINALITY ORDER BY ordinality LOOP
        RETURN NEXT ziri_settle_charge(
            v->>'request_id', v->>'key', v->>'user', v->>'model', (v->>'reserved_at')::timestamptz,
            (v->>'ts')::timestamptz, (v->>'micros')::bigint, (v->>'images')::integer, (v->>'record')::json,
            (v->>'late_record')::json, v->>'day', v->>'month');
    END LOOP;
END $$;
"""

#: (version, name, SQL), in order. Never edit a released migration: add the next one.
MIGRATIONS = (
    (1, "ledger records, key locks, period totals, open reservations, worker leases", _INITIAL),
    (2, "refusal counts per day, key and code", _REFUSALS),
    (3, "request path functions: ziri_reserve_begin, ziri_settle_charge", _REQUEST_PATH_FUNCTIONS),
    (4, "request path in one call each: per-key counters, admission ordinals, ziri_reserve", _COUNTERS),
    (5, "the database's clock decides expiry and the rate window (ziri_now); a released Idempotency-Key is free",
     DATABASE_CLOCK),
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
