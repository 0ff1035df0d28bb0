-- The key store's statements (keys/postgres.py reads, keys/postgres_registry.py writes): the
-- tables of migrations/002_keys.sql. Each statement follows its "-- name:" line.

-- name: key_version
-- What every gateway process asks at most every ZIRI_KEYS_REFRESH_SECONDS: one row, by its primary key.
SELECT version FROM key_store_version

-- name: lock_keys
-- Every edit takes this row first: edits are applied one at a time (an id checked free stays
-- free until the insert), and the version they bump orders them.
SELECT version FROM key_store_version FOR UPDATE

-- name: bump_version
UPDATE key_store_version SET version = version + 1 RETURNING version

-- name: select_teams
SELECT t.id, t.name, t.status, t.limits, t.created_at,
       (SELECT count(*) FROM api_keys k WHERE k.team_id = t.id) AS keys
FROM teams t ORDER BY t.id

-- name: select_team
SELECT t.id, t.name, t.status, t.limits, t.created_at,
       (SELECT count(*) FROM api_keys k WHERE k.team_id = t.id) AS keys
FROM teams t WHERE t.id = %(id)s

-- name: select_keys
-- %(user)s / %(team)s: NULL for every user / team.
SELECT id, hash, user_id, status, demo, team_id, expires_at, allowed_providers, allowed_models, limits,
       created_at, revoked_at, rotated_at
FROM api_keys
WHERE (%(user)s::text IS NULL OR user_id = %(user)s) AND (%(team)s::text IS NULL OR team_id = %(team)s)
ORDER BY id

-- name: select_key
SELECT id, hash, user_id, status, demo, team_id, expires_at, allowed_providers, allowed_models, limits,
       created_at, revoked_at, rotated_at
FROM api_keys WHERE id = %(id)s

-- name: key_with_hash
SELECT id FROM api_keys WHERE hash = %(hash)s

-- name: insert_key
INSERT INTO api_keys (id, hash, user_id, status, demo, team_id, expires_at, allowed_providers, allowed_models,
                      limits, created_at, revoked_at, rotated_at)
VALUES (%(id)s, %(hash)s, %(user_id)s, %(status)s, %(demo)s, %(team_id)s, %(expires_at)s, %(allowed_providers)s,
        %(allowed_models)s, %(limits)s, %(created_at)s, %(revoked_at)s, %(rotated_at)s)

-- name: update_key
UPDATE api_keys SET hash = %(hash)s, user_id = %(user_id)s, status = %(status)s, demo = %(demo)s,
                    team_id = %(team_id)s, expires_at = %(expires_at)s, allowed_providers = %(allowed_providers)s,
                    allowed_models = %(allowed_models)s, limits = %(limits)s, revoked_at = %(revoked_at)s,
                    rotated_at = %(rotated_at)s
WHERE id = %(id)s

-- name: delete_key
DELETE FROM api_keys WHERE id = %(id)s

-- name: tombstone
-- A deleted key's id, or a hash a key no longer has: an import never brings either back.
INSERT INTO key_tombstones (kind, value) VALUES (%(kind)s, %(value)s) ON CONFLICT (kind, value) DO NOTHING

-- name: tombstones
SELECT kind, value FROM key_tombstones

-- name: insert_team
INSERT INTO teams (id, name, status, limits, created_at)
VALUES (%(id)s, %(name)s, %(status)s, %(limits)s, %(created_at)s)

-- name: update_team
UPDATE teams SET name = %(name)s, status = %(status)s, limits = %(limits)s WHERE id = %(id)s

-- name: delete_team
DELETE FROM teams WHERE id = %(id)s

-- name: insert_audit
-- In the transaction of the change it records.
INSERT INTO audit_records (ts, audit_id, record) VALUES (%(ts)s, %(audit_id)s, %(record)s)

-- name: id_taken
-- A key's id is never given twice: not while the key exists, nor once it was deleted (its ledger
-- records keep naming it).
SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = %(id)s)
    OR EXISTS (SELECT 1 FROM key_tombstones WHERE kind = 'id' AND value = %(id)s)
