-- The statements sql.py names (LOCK_KEY, ...): each follows its "-- name:" line, with what it rules out.

-- name: lock_key
-- Lock the key's row until the transaction ends (the stale settlements, the sweep; ziri_reserve
-- takes it the same way). Rules out two reservations of one key both seeing the budget free or
-- the rate window open (lost update), and two requests with one Idempotency-Key both being
-- admitted. A plain row lock: waiting requests queue on it without writing a row version each.
-- (A charge and an expiry racing for one reservation are ruled out by the open reservation's
-- row: see ziri_settle_charge.)
SELECT key_id FROM key_locks WHERE key_id = %(key)s FOR UPDATE

-- name: create_key
-- The key's first request creates its row (two first requests at once: one inserts, both then lock).
INSERT INTO key_locks (key_id) VALUES (%(key)s) ON CONFLICT (key_id) DO NOTHING

-- name: take_stale
-- Take the key's stale reservations out of the open set: past their expiry at now (the
-- database's clock: ziri_reserve's answer, or DATABASE_NOW), or held by a process whose lease has
-- lapsed (or was never there) on the database's clock.
-- DELETE ... RETURNING hands each one to exactly one settler; the key's and its teams' in-flight
-- counts and held amounts, and its end users', drop with them (the caller holds the key's lock;
-- the team_locks update takes the team's, after it, as every other path does; the caller writes
-- their expiry records).
WITH stale AS (
  DELETE FROM open_reservations r
  WHERE r.key_id = %(key)s
    AND (r.expires_at <= %(now)s
         OR NOT EXISTS (SELECT 1 FROM worker_leases l WHERE l.worker = r.worker AND l.expires_at > clock_timestamp()))
  RETURNING r.request_id, r.micros, r.reserved_at, r.expires_at, r.worker, r.team_id, r.end_user
), flight AS (
  UPDATE key_locks SET in_flight = in_flight - (SELECT count(*) FROM stale)
  WHERE key_id = %(key)s AND EXISTS (SELECT 1 FROM stale)
), team_flight AS (
  UPDATE team_locks t SET in_flight = t.in_flight - s.closed
  FROM (SELECT team_id, count(*) AS closed FROM stale WHERE team_id IS NOT NULL GROUP BY team_id) s
  WHERE t.team_id = s.team_id
), periods AS (
  SELECT s.team_id, s.end_user, s.micros, p.period, length(p.period) = 10 AS is_day FROM stale s,
         unnest(ARRAY[to_char(s.reserved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                      to_char(s.reserved_at AT TIME ZONE 'UTC', 'YYYY-MM')]) AS p (period)
), held AS (
  INSERT INTO key_periods (key_id, period, held_micros)
  SELECT %(key)s, period, -sum(micros) FROM periods GROUP BY period
  ON CONFLICT (key_id, period) DO UPDATE SET held_micros = key_periods.held_micros + EXCLUDED.held_micros
), team_held AS (
  INSERT INTO team_periods (team_id, period, held_micros)
  SELECT team_id, period, -sum(micros) FROM periods WHERE team_id IS NOT NULL GROUP BY team_id, period
  ON CONFLICT (team_id, period) DO UPDATE SET held_micros = team_periods.held_micros + EXCLUDED.held_micros
), end_user_held AS (
  INSERT INTO end_user_days (key_id, end_user, day, held_micros)
  SELECT %(key)s, coalesce(end_user, ''), period, -sum(micros) FROM periods WHERE is_day GROUP BY 2, period
  ON CONFLICT (key_id, end_user, day) DO UPDATE SET held_micros = end_user_days.held_micros + EXCLUDED.held_micros
)
SELECT request_id, micros, reserved_at, expires_at, worker, team_id, end_user FROM stale

-- name: team_stale_keys
-- The keys whose stale reservations (as take_stale finds them) hold a team's counters: ziri_reserve
-- answers 'stale' for the team until each of them is settled under its own key's lock.
SELECT DISTINCT r.key_id FROM open_reservations r
WHERE r.team_id = %(team)s
  AND (r.expires_at <= %(now)s
       OR NOT EXISTS (SELECT 1 FROM worker_leases l WHERE l.worker = r.worker AND l.expires_at > clock_timestamp()))
ORDER BY 1

-- name: database_now
-- The database's clock, which every host's expiries and rate windows are judged on (functions/ziri_now.sql).
SELECT ziri_now()

-- name: keys_with_dead_workers
-- Keys with a reservation whose process's lease has lapsed (for the background sweep).
SELECT DISTINCT r.key_id FROM open_reservations r
WHERE NOT EXISTS (SELECT 1 FROM worker_leases l WHERE l.worker = r.worker AND l.expires_at > clock_timestamp())

-- name: reserve_many
-- Reserve (or read a key's usage), then settle: one statement each, for every call of one key
-- queued in this process (batch.py); see functions/ziri_reserve.sql and ziri_settle_charge.sql.
SELECT * FROM ziri_reserve_many(%(batch)s::json, %(rate_window)s::interval, %(idempotency_window)s::interval)

-- name: settle_many
SELECT * FROM ziri_settle_many(%(batch)s::json)

-- name: write_settlement
-- An expiry record and what it adds to the spent totals of the periods the request was reserved
-- in (the key's, its team's, its end user's day), in one statement (TAKE_STALE released its held
-- amount, and took the team's lock). ON CONFLICT DO NOTHING with the unique (request_id, type)
-- index: a settlement written twice is stored, and counted, once.
WITH written AS (
  INSERT INTO ledger_records (ts, type, request_id, key_id, user_id, model, reserved_at, micros, images, team_id,
                              end_user, record)
  VALUES (%(ts)s, %(type)s, %(request_id)s, %(key)s, %(user)s, %(model)s, %(reserved_at)s, %(micros)s, %(images)s,
          %(team)s, nullif(%(end_user)s, ''), %(record)s)
  ON CONFLICT (request_id, type) DO NOTHING
  RETURNING key_id, team_id
), team_spent AS (
  INSERT INTO team_periods (team_id, period, spent_micros)
  SELECT team_id, period, %(delta)s FROM written, unnest(ARRAY[%(day)s, %(month)s]::text[]) AS period
  WHERE team_id IS NOT NULL
  ON CONFLICT (team_id, period) DO UPDATE SET spent_micros = team_periods.spent_micros + EXCLUDED.spent_micros
), end_user_spent AS (
  INSERT INTO end_user_days (key_id, end_user, day, spent_micros)
  SELECT key_id, %(end_user)s, %(day)s, %(delta)s FROM written
  ON CONFLICT (key_id, end_user, day) DO UPDATE SET spent_micros = end_user_days.spent_micros + EXCLUDED.spent_micros
)
INSERT INTO key_periods (key_id, period, spent_micros)
SELECT key_id, period, %(delta)s FROM written, unnest(ARRAY[%(day)s, %(month)s]::text[]) AS period
ON CONFLICT (key_id, period) DO UPDATE SET spent_micros = key_periods.spent_micros + EXCLUDED.spent_micros

-- name: open_reservation
-- A reservation still open, as a settlement needs it (a reserve whose answer was lost).
SELECT request_id, micros, reserved_at, expires_at, worker, team_id, end_user FROM open_reservations
WHERE request_id = %(request_id)s AND key_id = %(key)s

-- name: renew_lease
-- Times on the database's clock: every host judges a lease by the same clock.
INSERT INTO worker_leases (worker, expires_at)
VALUES (%(worker)s, clock_timestamp() + make_interval(secs => %(seconds)s))
ON CONFLICT (worker) DO UPDATE SET expires_at = EXCLUDED.expires_at

-- name: forget_leases
-- Leases that lapsed a day ago: no reservation can still need them (each expires within minutes).
DELETE FROM worker_leases WHERE expires_at < clock_timestamp() - interval '1 day'

-- name: session_timeouts
-- Each new connection's bounds (pool.py; SET, not startup options: connection poolers refuse those).
-- {millis} is the store's timeout, {idle_millis} four times it: numbers the store computes, never input.
SET statement_timeout = {millis}; SET lock_timeout = {millis}; SET idle_in_transaction_session_timeout = {idle_millis}
