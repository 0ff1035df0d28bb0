-- The alert outbox's statements (alerts.py): the budget_alerts table (migrations/003). Rows are
-- written by ziri_record_alerts, in the charge's transaction; these claim, retry, finish and list them.
-- Claims and retries are timed on the database's own clock (clock_timestamp()), one for every host.

-- name: claim_due
-- Up to %(limit)s pending alerts whose next attempt is due and that no live claim holds, oldest
-- first, claimed for %(seconds)s: SKIP LOCKED lets two senders claim at once, never the same row.
UPDATE budget_alerts a SET claimed_until = clock_timestamp() + make_interval(secs => %(seconds)s)
FROM (SELECT id FROM budget_alerts
      WHERE status = 'pending' AND next_attempt_at <= clock_timestamp()
        AND (claimed_until IS NULL OR claimed_until <= clock_timestamp())
      ORDER BY next_attempt_at, id LIMIT %(limit)s
      FOR UPDATE SKIP LOCKED) due
WHERE a.id = due.id
RETURNING a.id, a.scope, a.holder_id, a.user_id, a.period, a.limit_name, a.threshold, a.spent_micros,
          a.limit_micros, a.period_start, a.at, a.status, a.attempts, a.last_error, a.finished_at

-- name: retry_later
UPDATE budget_alerts SET attempts = %(attempts)s, last_error = %(error)s, claimed_until = NULL,
                         next_attempt_at = clock_timestamp() + make_interval(secs => %(delay)s)
WHERE id = %(id)s AND status = 'pending'

-- name: finish
UPDATE budget_alerts SET status = %(status)s, attempts = %(attempts)s, last_error = %(error)s, claimed_until = NULL,
                         finished_at = clock_timestamp()
WHERE id = %(id)s AND status = 'pending'

-- name: list
SELECT id, scope, holder_id, user_id, period, limit_name, threshold, spent_micros, limit_micros, period_start, at,
       status, attempts, last_error, finished_at
FROM budget_alerts
WHERE at >= %(since)s::timestamptz AND (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY at DESC, id DESC
