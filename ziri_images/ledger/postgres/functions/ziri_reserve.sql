-- Reserve (or, with p_micros NULL, read the usage) in one call, one round trip: lock the key's
-- row, then its team's (p_team; always in that order, so no two calls deadlock), read their
-- counters and the end user's day (p_end_user, as records.counted_end_user counts it), run the
-- checks, insert the reservation. o_state: 'admitted'; 'refused' (nothing written: the caller's
-- checks.run_checks says why, from the usage returned); 'usage'; or 'stale': the key or its team
-- holds reservations past their expiry or of a process whose lease lapsed, nothing was read or
-- written, and the caller settles them (their records are built in Python) and calls again. The
-- usage returned is the key's, its team's and its end user's before this reservation.
-- The refusal below is checks.CHECKS as one predicate (a NULL limit is no limit): the SQL mirror
-- of the Python rule, named in checks.py and held to it by tests/ledger/postgres/test_parity.py.
-- A request answered x-should-retry: true without reaching a provider that could bill has a
-- charge saying idempotencyReleased: its Idempotency-Key no longer refuses the retry.
-- The arguments and results grew with teams and end users (migration 003): the older one goes.
DROP FUNCTION IF EXISTS ziri_reserve(text, text, text, text, timestamptz, timestamptz, bigint, text, text, text,
                                     interval, interval, float8, float8, bigint, bigint);
CREATE OR REPLACE FUNCTION ziri_reserve(
    p_key text, p_user text, p_model text, p_request_id text, p_now timestamptz, p_expires_at timestamptz,
    p_micros bigint, p_digest text, p_worker text, p_record text, p_rate_window interval,
    p_idempotency_window interval, p_rpm float8, p_max_concurrent float8, p_daily bigint, p_monthly bigint,
    p_team text, p_team_rpm float8, p_team_max_concurrent float8, p_team_daily bigint, p_team_monthly bigint,
    p_end_user text, p_end_user_daily bigint,
    OUT o_state text, OUT o_now timestamptz, OUT o_spent_day bigint, OUT o_spent_month bigint,
    OUT o_requests_day bigint, OUT o_requests_month bigint, OUT o_held_day bigint, OUT o_held_month bigint,
    OUT o_in_flight integer, OUT o_window_count bigint, OUT o_window_first float8, OUT o_same text,
    OUT o_same_open boolean, OUT o_team_spent_day bigint, OUT o_team_spent_month bigint,
    OUT o_team_requests_day bigint, OUT o_team_requests_month bigint, OUT o_team_held_day bigint,
    OUT o_team_held_month bigint, OUT o_team_in_flight integer, OUT o_team_window_count bigint,
    OUT o_team_window_first float8, OUT o_end_user_spent bigint, OUT o_end_user_held bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_format constant text := 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"';  -- records.format_ts
    v_admitted bigint;
    v_last timestamptz;
    v_team_admitted bigint;
    v_team_last timestamptz;
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
    IF p_team IS NOT NULL THEN  -- the team's row, after the key's
        SELECT admitted, in_flight, last_reserved_at INTO v_team_admitted, o_team_in_flight, v_team_last
          FROM team_locks WHERE team_id = p_team FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO team_locks (team_id) VALUES (p_team) ON CONFLICT (team_id) DO NOTHING;
            SELECT admitted, in_flight, last_reserved_at INTO v_team_admitted, o_team_in_flight, v_team_last
              FROM team_locks WHERE team_id = p_team FOR UPDATE;
        END IF;
    END IF;
    -- The database's clock, read once the locks are held, whichever host calls. Never earlier than
    -- the key's or the team's last reservation (the clock stepped back), so their records (and
    -- admission ordinals) stay in time order.
    o_now := greatest(ziri_now(), v_last, v_team_last);
    IF EXISTS (SELECT 1 FROM open_reservations WHERE key_id = p_key AND expires_at <= o_now)
       OR EXISTS (SELECT 1 FROM worker_leases l
                   WHERE l.expires_at <= clock_timestamp()
                     -- OFFSET 0 keeps this a probe per lapsed lease (a few rows), never a scan
                     -- of the key's open reservations (as many as it has in flight).
                     AND EXISTS (SELECT 1 FROM open_reservations r
                                  WHERE r.worker = l.worker AND r.key_id = p_key OFFSET 0))
       OR p_team IS NOT NULL AND (
            EXISTS (SELECT 1 FROM open_reservations WHERE team_id = p_team AND expires_at <= o_now)
            OR EXISTS (SELECT 1 FROM worker_leases l
                        WHERE l.expires_at <= clock_timestamp()
                          AND EXISTS (SELECT 1 FROM open_reservations r
                                       WHERE r.worker = l.worker AND r.team_id = p_team OFFSET 0)))
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
    IF v_first IS NOT NULL AND v_first_admission IS NULL THEN  -- never after migration 4: count them
        SELECT count(*) INTO o_window_count FROM ledger_records
         WHERE type = 'reservation' AND key_id = p_key AND ts > o_now - p_rate_window;
    END IF;
    IF p_team IS NOT NULL THEN  -- the team's counters and rate window, read as the key's
        SELECT coalesce(sum(spent_micros) FILTER (WHERE period = v_day), 0),
               coalesce(sum(spent_micros) FILTER (WHERE period = v_month), 0),
               coalesce(sum(requests) FILTER (WHERE period = v_day), 0),
               coalesce(sum(requests) FILTER (WHERE period = v_month), 0),
               coalesce(sum(held_micros) FILTER (WHERE period = v_day), 0),
               coalesce(sum(held_micros) FILTER (WHERE period = v_month), 0)
          INTO o_team_spent_day, o_team_spent_month, o_team_requests_day, o_team_requests_month, o_team_held_day,
               o_team_held_month
          FROM team_periods WHERE team_id = p_team AND period IN (v_day, v_month);
        SELECT ts, team_admission INTO v_first, v_first_admission FROM ledger_records
         WHERE type = 'reservation' AND team_id = p_team AND ts > o_now - p_rate_window
         ORDER BY ts, team_admission LIMIT 1;
        o_team_window_first := extract(epoch FROM v_first)::float8;
        o_team_window_count := CASE WHEN v_first IS NULL THEN 0 ELSE v_team_admitted - v_first_admission + 1 END;
        IF v_first IS NOT NULL AND v_first_admission IS NULL THEN  -- not yet numbered (an import): count them
            SELECT count(*) INTO o_team_window_count FROM ledger_records
             WHERE type = 'reservation' AND team_id = p_team AND ts > o_now - p_rate_window;
        END IF;
    END IF;
    IF p_end_user IS NOT NULL THEN
        SELECT spent_micros, held_micros INTO o_end_user_spent, o_end_user_held FROM end_user_days
         WHERE key_id = p_key AND end_user = p_end_user AND day = v_day;
        o_end_user_spent := coalesce(o_end_user_spent, 0);
        o_end_user_held := coalesce(o_end_user_held, 0);
    END IF;
    IF p_digest IS NOT NULL THEN
        -- The latest: a released key's retry shares its ts when the clock has not moved on.
        SELECT request_id INTO o_same FROM ledger_records
         WHERE type = 'reservation' AND key_id = p_key AND idempotency_key = p_digest
           AND ts > o_now - p_idempotency_window
         ORDER BY ts DESC, admission DESC NULLS LAST LIMIT 1;
        IF o_same IS NOT NULL THEN
            o_same_open := EXISTS (SELECT 1 FROM open_reservations WHERE request_id = o_same);
            -- Its charge released the key (records.releases_idempotency_key; UsageState folds the
            -- same field): the retry it was told to make is a new request.
            IF NOT o_same_open AND EXISTS (
                SELECT 1 FROM ledger_records WHERE request_id = o_same AND type = 'charge'
                   AND (record->'idempotencyReleased')::text = 'true' AND record->>'idempotencyKey' = p_digest)
            THEN
                o_same := NULL;
                o_same_open := NULL;
            END IF;
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
       OR (p_end_user_daily IS NOT NULL AND o_end_user_spent + o_end_user_held + p_micros > p_end_user_daily)
       OR (p_team_rpm IS NOT NULL AND o_team_window_count >= p_team_rpm)
       OR (p_team_max_concurrent IS NOT NULL AND o_team_in_flight >= p_team_max_concurrent)
       OR (p_team_daily IS NOT NULL AND o_team_spent_day + o_team_held_day + p_micros > p_team_daily)
       OR (p_team_monthly IS NOT NULL AND o_team_spent_month + o_team_held_month + p_micros > p_team_monthly)
    THEN
        o_state := 'refused';
        RETURN;
    END IF;
    v_expires := o_now + (p_expires_at - p_now);
    IF o_now <> p_now THEN
        -- The record says the database's times. ts is the record's first field; JSON escapes a
        -- quote inside a string, so these texts can only be the fields.
        v_record := replace(replace(v_record,
            '{"ts":"' || to_char(p_now AT TIME ZONE 'UTC', v_format) || '"',
            '{"ts":"' || to_char(o_now AT TIME ZONE 'UTC', v_format) || '"'),
            ',"expiresAt":"' || to_char(p_expires_at AT TIME ZONE 'UTC', v_format) || '"',
            ',"expiresAt":"' || to_char(v_expires AT TIME ZONE 'UTC', v_format) || '"');
    END IF;
    INSERT INTO ledger_records (ts, type, request_id, key_id, user_id, model, reserved_at, micros, idempotency_key,
                                admission, team_id, team_admission, end_user, record)
    VALUES (o_now, 'reservation', p_request_id, p_key, p_user, p_model, o_now, p_micros, p_digest, v_admitted + 1,
            p_team, v_team_admitted + 1, nullif(p_end_user, ''), v_record::json);
    INSERT INTO open_reservations (request_id, key_id, micros, reserved_at, expires_at, worker, team_id, end_user)
    VALUES (p_request_id, p_key, p_micros, o_now, v_expires, p_worker, p_team, p_end_user);
    UPDATE key_locks SET admitted = admitted + 1, in_flight = in_flight + 1, last_reserved_at = o_now
     WHERE key_id = p_key;
    INSERT INTO key_periods (key_id, period, requests, held_micros)
    VALUES (p_key, v_day, 1, p_micros), (p_key, v_month, 1, p_micros)
    ON CONFLICT (key_id, period) DO UPDATE SET requests = key_periods.requests + 1,
                                               held_micros = key_periods.held_micros + EXCLUDED.held_micros;
    IF p_team IS NOT NULL THEN
        UPDATE team_locks SET admitted = admitted + 1, in_flight = in_flight + 1, last_reserved_at = o_now
         WHERE team_id = p_team;
        INSERT INTO team_periods (team_id, period, requests, held_micros)
        VALUES (p_team, v_day, 1, p_micros), (p_team, v_month, 1, p_micros)
        ON CONFLICT (team_id, period) DO UPDATE SET requests = team_periods.requests + 1,
                                                    held_micros = team_periods.held_micros + EXCLUDED.held_micros;
    END IF;
    INSERT INTO end_user_days (key_id, end_user, day, held_micros)
    VALUES (p_key, coalesce(p_end_user, ''), v_day, p_micros)
    ON CONFLICT (key_id, end_user, day) DO UPDATE SET held_micros = end_user_days.held_micros + EXCLUDED.held_micros;
    o_state := 'admitted';
END $$;
