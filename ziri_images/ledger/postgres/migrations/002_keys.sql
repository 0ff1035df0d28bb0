-- Keys and teams in the database: with PostgreSQL configured, the one key store every gateway
-- reads (keys/postgres.py), edited by the command line and the admin API (keys/postgres_registry.py).
-- Each row holds what a keys.json entry holds; keys.store.parse_key_record checks every record
-- before it is written, as it checks the file.

CREATE TABLE teams (
    id text PRIMARY KEY,
    name text NOT NULL,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    -- {"daily_spend_limit": 10, ...}: keys.store.TEAM_LIMIT_NAMES, absent = unlimited.
    limits jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(limits) = 'object'),
    created_at timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id text PRIMARY KEY,
    -- 'sha256:' + the SHA-256 of the whole key: the raw key is never stored.
    hash text NOT NULL UNIQUE CHECK (hash ~ '^sha256:[0-9a-f]{64}$'),
    user_id text NOT NULL,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    demo boolean NOT NULL DEFAULT false,
    -- A team with keys cannot be deleted (the registry says so first).
    team_id text REFERENCES teams (id),
    expires_at timestamptz,
    -- NULL: any provider (model); an array: only those.
    allowed_providers text[],
    allowed_models text[],
    limits jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(limits) = 'object'),
    created_at timestamptz NOT NULL,
    revoked_at timestamptz,
    rotated_at timestamptz
);
CREATE INDEX api_keys_user ON api_keys (user_id);
CREATE INDEX api_keys_team ON api_keys (team_id);

-- What was deleted, so that an import never brings it back: the ids of deleted keys, and every
-- hash a key no longer has (deleted, or rotated away).
CREATE TABLE key_tombstones (
    kind text NOT NULL CHECK (kind IN ('id', 'hash')),
    value text NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value)
);

-- One row: bumped by every change of api_keys or teams, in the change's transaction. Each
-- gateway process reads it (one indexed row) at most every ZIRI_KEYS_REFRESH_SECONDS and reloads
-- its keys when it moved. The UPDATE that bumps it is also the lock that orders every key edit.
CREATE TABLE key_store_version (
    single boolean PRIMARY KEY DEFAULT true CHECK (single),
    version bigint NOT NULL
);
INSERT INTO key_store_version (single, version) VALUES (true, 0);

-- Who changed which key or team, what, and when (ledger/records.py's audit_record): never a key
-- or its hash. Apart from ledger_records (an audit record costs nothing and names no request);
-- the ledger export includes them (archive.py).
CREATE TABLE audit_records (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts timestamptz NOT NULL,
    audit_id text NOT NULL UNIQUE,
    -- json, not jsonb: exported as written.
    record json NOT NULL
);
CREATE INDEX audit_records_ts ON audit_records (ts);
