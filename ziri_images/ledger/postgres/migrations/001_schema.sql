-- The PostgreSQL store's tables and indexes (the functions are in ../functions/, applied after).
-- Development migrations 1-5 squashed into one before the first release: a database they
-- migrated has this schema already (migrate.py records it as this version).

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
    record json NOT NULL,
    -- A reservation's ordinal among its key's reservations (1, 2, ...), in time order: the rate
    -- window is two index look-ups (its first admission, and the key's count), never a scan.
    admission bigint
);
-- At most one record of each type per request: a retried settle, a spooled charge written once
-- the database is back, or an import run twice can never charge (or reserve) a request twice.
CREATE UNIQUE INDEX ledger_records_one_per_request ON ledger_records (request_id, type);
CREATE INDEX ledger_records_ts ON ledger_records (ts);
CREATE INDEX ledger_records_settled ON ledger_records (reserved_at) WHERE type <> 'reservation';
-- The rate window and the idempotency look-up read only a key's recent reservations.
CREATE INDEX ledger_records_admission_order ON ledger_records (key_id, ts, admission) WHERE type = 'reservation';
CREATE INDEX ledger_records_idempotency ON ledger_records (key_id, idempotency_key, ts)
    WHERE type = 'reservation' AND idempotency_key IS NOT NULL;

-- One row per key, locked (SELECT ... FOR UPDATE) by every reserve and settle of that key: two
-- requests can never both see the budget free, the rate window open or an Idempotency-Key unused.
-- Its counters are written only under that lock: the reservations admitted so far (the last
-- one's ordinal), those still open, and the last one's time (a key's records never go back in time).
CREATE TABLE key_locks (
    key_id text PRIMARY KEY,
    admitted bigint NOT NULL DEFAULT 0,
    in_flight integer NOT NULL DEFAULT 0,
    last_reserved_at timestamptz
);

-- Running totals per key and period ('YYYY-MM-DD', 'YYYY-MM'): O(1) budget checks at any ledger size.
-- Written only under the key's lock, in the transaction that writes the record they count.
CREATE TABLE key_periods (
    key_id text NOT NULL,
    period text NOT NULL,
    spent_micros bigint NOT NULL DEFAULT 0,
    requests integer NOT NULL DEFAULT 0,
    -- What the period's open reservations hold.
    held_micros bigint NOT NULL DEFAULT 0,
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
CREATE INDEX open_reservations_key_expiry ON open_reservations (key_id, expires_at);
CREATE INDEX open_reservations_worker_key ON open_reservations (worker, key_id);

-- One row per gateway process, renewed while it lives (times on the database's clock, so hosts'
-- clocks never disagree). A reservation whose worker has no live lease belongs to a dead process.
CREATE TABLE worker_leases (
    worker text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

-- Refused requests per day, key and code: never in ledger_records (a refusal costs nothing, and a
-- flood of them must not grow the ledger). Each process upserts its aggregated counts every few seconds.
CREATE TABLE refusal_counts (
    day date NOT NULL,
    key_id text NOT NULL,
    code text NOT NULL,
    refused bigint NOT NULL CHECK (refused >= 0),
    PRIMARY KEY (day, key_id, code)
);
