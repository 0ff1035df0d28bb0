-- The bookkeeping of migrate.py: each statement follows its "-- name:" line.

-- name: lock
-- Held until the transaction ends: two deploys never migrate at once.
SELECT pg_advisory_xact_lock(1514754633)  -- 0x5A495249, "ZIRI"

-- name: adopt_squashed
-- Development migrations 1-5 were squashed into 001 before the first release. A database they
-- migrated (it has schema_migrations but not schema_functions) holds 001's tables: record it as
-- 001 (its functions are then re-applied, none being recorded). One they left half-way cannot be.
DO $$
BEGIN
    IF to_regclass('schema_migrations') IS NULL OR to_regclass('schema_functions') IS NOT NULL THEN
        RETURN;  -- an empty database, or one migrated since the squash
    END IF;
    IF NOT EXISTS (SELECT 1 FROM schema_migrations) THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 5) THEN
        RAISE EXCEPTION 'schema version % from a development version of ziri-images: recreate the database',
            (SELECT max(version) FROM schema_migrations);
    END IF;
    DELETE FROM schema_migrations WHERE version > 1;
    UPDATE schema_migrations SET name = 'schema' WHERE version = 1;
END $$

-- name: create_bookkeeping
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
-- The SHA-256 of the text each functions/*.sql file had when it was last applied.
CREATE TABLE IF NOT EXISTS schema_functions (
    name text PRIMARY KEY,
    sha256 text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: applied_versions
SELECT version FROM schema_migrations

-- name: record_version
INSERT INTO schema_migrations (version, name) VALUES (%(version)s, %(name)s)

-- name: applied_functions
SELECT name, sha256 FROM schema_functions

-- name: record_function
INSERT INTO schema_functions (name, sha256) VALUES (%(name)s, %(sha256)s)
ON CONFLICT (name) DO UPDATE SET sha256 = EXCLUDED.sha256, applied_at = now()

-- name: has_schema
SELECT to_regclass('schema_migrations') IS NOT NULL

-- name: schema_version
SELECT coalesce(max(version), 0) FROM schema_migrations
