-- Group commit (batch.py): the reserves queued for one key in a process, decided one by one in
-- their order, in one transaction (one lock, one WAL flush). p_batch: a JSON array of
-- ziri_reserve's arguments.
-- Its results grew with ziri_reserve's (migration 003): the older one goes.
DROP FUNCTION IF EXISTS ziri_reserve_many(json, interval, interval);
CREATE OR REPLACE FUNCTION ziri_reserve_many(p_batch json, p_rate_window interval, p_idempotency_window interval)
RETURNS TABLE (r_state text, r_now timestamptz, r_spent_day bigint, r_spent_month bigint, r_requests_day bigint,
               r_requests_month bigint, r_held_day bigint, r_held_month bigint, r_in_flight integer,
               r_window_count bigint, r_window_first float8, r_same text, r_same_open boolean,
               r_team_spent_day bigint, r_team_spent_month bigint, r_team_requests_day bigint,
               r_team_requests_month bigint, r_team_held_day bigint, r_team_held_month bigint,
               r_team_in_flight integer, r_team_window_count bigint, r_team_window_first float8,
               r_end_user_spent bigint, r_end_user_held bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v json;
BEGIN
    FOR v IN SELECT value FROM json_array_elements(p_batch) WITH ORDINALITY ORDER BY ordinality LOOP
        RETURN QUERY SELECT * FROM ziri_reserve(
            v->>'key', v->>'user', v->>'model', v->>'request_id', (v->>'now')::timestamptz,
            (v->>'expires_at')::timestamptz, (v->>'micros')::bigint, v->>'digest', v->>'worker', v->>'record',
            p_rate_window, p_idempotency_window, (v->>'rpm')::float8, (v->>'max_concurrent')::float8,
            (v->>'daily')::bigint, (v->>'monthly')::bigint, v->>'team', (v->>'team_rpm')::float8,
            (v->>'team_max_concurrent')::float8, (v->>'team_daily')::bigint, (v->>'team_monthly')::bigint,
            v->>'end_user', (v->>'end_user_daily')::bigint);
    END LOOP;
END $$;
