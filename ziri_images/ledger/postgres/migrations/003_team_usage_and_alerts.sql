-- Teams, end users and budget alerts: a team's counters kept exactly as a key's, an end user's
-- day per key, and the budget alerts' outbox. (002 is the key and team records' own migration.)
-- Every column added is nullable without a default: no rewrite of a large ledger_records. Each
-- statement leaves what is already there (IF NOT EXISTS), as a schema adopted from before the
-- squash may hold it.

-- The team a request counts for and its ordinal among the team's reservations (the team's rate
-- window: two index look-ups, as the key's), and the end user the client named.
ALTER TABLE ledger_records ADD COLUMN IF NOT EXISTS team_id text, ADD COLUMN IF NOT EXISTS team_admission bigint,
    ADD COLUMN IF NOT EXISTS end_user text;
CREATE INDEX IF NOT EXISTS ledger_records_team_admission_order ON ledger_records (team_id, ts, team_admission)
    WHERE type = 'reservation' AND team_id IS NOT NULL;
-- The open reservation releases its team's and end user's holds when it is settled.
ALTER TABLE open_reservations ADD COLUMN IF NOT EXISTS team_id text, ADD COLUMN IF NOT EXISTS end_user text;
CREATE INDEX IF NOT EXISTS open_reservations_team_expiry ON open_reservations (team_id, expires_at)
    WHERE team_id IS NOT NULL;
-- A lapsed lease's reservations of one team: a probe, never a walk of the team's requests in flight.
CREATE INDEX IF NOT EXISTS open_reservations_worker_team ON open_reservations (worker, team_id)
    WHERE team_id IS NOT NULL;

-- One row per team, locked by every reserve and settle of its keys, always after the key's row
-- (key_locks, then team_locks: one order, no deadlock). Its counters as key_locks'.
CREATE TABLE IF NOT EXISTS team_locks (
    team_id text PRIMARY KEY,
    admitted bigint NOT NULL DEFAULT 0,
    in_flight integer NOT NULL DEFAULT 0,
    last_reserved_at timestamptz
);

-- Running totals per team and period, as key_periods', written only under the team's lock.
CREATE TABLE IF NOT EXISTS team_periods (
    team_id text NOT NULL,
    period text NOT NULL,
    spent_micros bigint NOT NULL DEFAULT 0,
    requests integer NOT NULL DEFAULT 0,
    held_micros bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, period)
);

-- What each end user of a key spent and holds per UTC day ('YYYY-MM-DD'): end_user_daily_spend_limit.
-- Requests that name no end user count under '' (records.counted_end_user). Written under the key's lock.
CREATE TABLE IF NOT EXISTS end_user_days (
    key_id text NOT NULL,
    end_user text NOT NULL,
    day text NOT NULL,
    spent_micros bigint NOT NULL DEFAULT 0,
    held_micros bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, end_user, day)
);

-- Budget alerts: one row per (scope, holder, limit, threshold, period start), whichever host's
-- charge reached it first (the unique index: INSERT ... ON CONFLICT DO NOTHING, once across
-- hosts), and its delivery: pending until a sender posts it, then delivered or failed. A sender
-- claims a row (claimed_until) so two processes never post it at once.
CREATE TABLE IF NOT EXISTS budget_alerts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope text NOT NULL CHECK (scope IN ('key', 'team')),
    holder_id text NOT NULL,
    user_id text,
    period text NOT NULL CHECK (period IN ('daily', 'monthly')),
    limit_name text NOT NULL,
    threshold integer NOT NULL,
    period_start timestamptz NOT NULL,
    spent_micros bigint NOT NULL,
    limit_micros bigint NOT NULL,
    at timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    claimed_until timestamptz,
    last_error text,
    finished_at timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS budget_alerts_once
    ON budget_alerts (scope, holder_id, period, limit_name, threshold, period_start);
CREATE INDEX IF NOT EXISTS budget_alerts_due ON budget_alerts (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS budget_alerts_at ON budget_alerts (at);
