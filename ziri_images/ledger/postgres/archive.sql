-- The archive's statements (archive.py): the operator's export, import and spend report, never a request's.

-- name: export_records
SELECT record FROM ledger_records WHERE ts >= %s AND ts < %s ORDER BY id

-- name: export_audit
SELECT record FROM audit_records WHERE ts >= %s AND ts < %s ORDER BY id

-- name: import_audit
-- An audit record already here (by its auditId) is not written twice.
INSERT INTO audit_records (ts, audit_id, record) VALUES (%s, %s, %s)
ON CONFLICT (audit_id) DO NOTHING
RETURNING id

-- name: report
-- Each request once, at its reservation's time, at its final amount: its charge, else its expiry.
-- The SQL mirror of usage.fold_expiry ("a charge replaces an expiry"), which the file store's report folds.
-- {groups}: the group_* expressions chosen (archive.py), never text from the command line.
SELECT {groups}, count(*), coalesce(sum(s.images), 0), coalesce(sum(s.micros), 0)::bigint,
       count(*) FILTER (WHERE s.type = 'reservation_expired')
FROM ledger_records s
LEFT JOIN ledger_records r ON r.request_id = s.request_id AND r.type = 'reservation'
WHERE s.type IN ('charge', 'reservation_expired')
  AND (s.type = 'charge'
       OR NOT EXISTS (SELECT 1 FROM ledger_records c WHERE c.request_id = s.request_id AND c.type = 'charge'))
  AND s.reserved_at >= %(since)s AND s.reserved_at < %(until)s
GROUP BY {groups}

-- name: group_key
s.key_id

-- name: group_user
-- {unknown}: report.UNKNOWN, the group of records that name none.
coalesce(s.user_id, r.user_id, '{unknown}')

-- name: group_model
coalesce(s.model, r.model, '{unknown}')

-- name: group_day
to_char(s.reserved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')

-- name: group_team
-- A record of a key without a team (or written before teams): {none}.
coalesce(s.team_id, r.team_id, '{none}')

-- name: group_end_user
coalesce(s.end_user, r.end_user, '{none}')

-- name: group_endpoint
-- From the record as written (records from before edits name none: they were generations).
coalesce(s.record->>'endpoint', r.record->>'endpoint', 'generations')

-- name: import_record
INSERT INTO ledger_records (ts, type, request_id, key_id, user_id, model, reserved_at, micros, images,
                            idempotency_key, team_id, end_user, record)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (request_id, type) DO NOTHING
RETURNING key_id, team_id

-- name: rebuild_lock_keys
-- After an import, rebuild the derived rows of the keys and teams it touched from their records
-- (under their locks, keys then teams, each in id order, so two imports cannot deadlock, nor an
-- import a request): the rebuild_* statements, in order.
INSERT INTO key_locks (key_id) SELECT DISTINCT unnest(%(keys)s::text[]) ORDER BY 1
ON CONFLICT (key_id) DO UPDATE SET key_id = EXCLUDED.key_id

-- name: rebuild_lock_teams
INSERT INTO team_locks (team_id) SELECT DISTINCT unnest(%(teams)s::text[]) ORDER BY 1
ON CONFLICT (team_id) DO UPDATE SET team_id = EXCLUDED.team_id

-- name: rebuild_clear_periods
DELETE FROM key_periods WHERE key_id = ANY(%(keys)s)

-- name: rebuild_periods
WITH final AS (
  SELECT s.key_id, s.reserved_at, s.micros FROM ledger_records s
  WHERE s.key_id = ANY(%(keys)s) AND (s.type = 'charge' OR (s.type = 'reservation_expired' AND NOT EXISTS (
    SELECT 1 FROM ledger_records c WHERE c.request_id = s.request_id AND c.type = 'charge')))
), counted AS (
  SELECT key_id, to_char(reserved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS period, micros, 0 AS requests FROM final
  UNION ALL SELECT key_id, to_char(reserved_at AT TIME ZONE 'UTC', 'YYYY-MM'), micros, 0 FROM final
  UNION ALL SELECT key_id, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 0, 1 FROM ledger_records
            WHERE type = 'reservation' AND key_id = ANY(%(keys)s)
  UNION ALL SELECT key_id, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM'), 0, 1 FROM ledger_records
            WHERE type = 'reservation' AND key_id = ANY(%(keys)s)
)
INSERT INTO key_periods (key_id, period, spent_micros, requests)
SELECT key_id, period, sum(micros), sum(requests) FROM counted GROUP BY key_id, period

-- name: rebuild_drop_settled
DELETE FROM open_reservations o WHERE o.key_id = ANY(%(keys)s) AND EXISTS (
  SELECT 1 FROM ledger_records s WHERE s.request_id = o.request_id AND s.type <> 'reservation')

-- name: rebuild_open_reservations
INSERT INTO open_reservations (request_id, key_id, micros, reserved_at, expires_at, worker, team_id, end_user)
SELECT r.request_id, r.key_id, r.micros, r.ts, (r.record ->> 'expiresAt')::timestamptz,
       coalesce(r.record ->> 'worker', ''), r.team_id, coalesce(r.end_user, '')
FROM ledger_records r
WHERE r.type = 'reservation' AND r.key_id = ANY(%(keys)s) AND NOT EXISTS (
  SELECT 1 FROM ledger_records s WHERE s.request_id = r.request_id AND s.type <> 'reservation')
ON CONFLICT (request_id) DO NOTHING

-- name: rebuild_counters
SELECT ziri_rebuild_counters(%(keys)s::text[])

-- name: rebuild_team_counters
SELECT ziri_rebuild_team_counters(%(teams)s::text[])

-- name: rebuild_clear_end_user_days
DELETE FROM end_user_days WHERE key_id = ANY(%(keys)s)

-- name: rebuild_end_user_days
-- Each request of the keys once, at its final amount (as rebuild_periods), under its end user
-- ('' for none: records.counted_end_user) and its reservation's day; the open ones' holds beside.
WITH final AS (
  SELECT s.key_id, coalesce(s.end_user, r.end_user, '') AS end_user,
         to_char(s.reserved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, s.micros AS spent, 0::bigint AS held
  FROM ledger_records s
  LEFT JOIN ledger_records r ON r.request_id = s.request_id AND r.type = 'reservation'
  WHERE s.key_id = ANY(%(keys)s) AND (s.type = 'charge' OR (s.type = 'reservation_expired' AND NOT EXISTS (
    SELECT 1 FROM ledger_records c WHERE c.request_id = s.request_id AND c.type = 'charge')))
  UNION ALL
  SELECT key_id, end_user, to_char(reserved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 0, micros
  FROM open_reservations WHERE key_id = ANY(%(keys)s)
)
INSERT INTO end_user_days (key_id, end_user, day, spent_micros, held_micros)
SELECT key_id, end_user, day, sum(spent), sum(held) FROM final GROUP BY key_id, end_user, day
