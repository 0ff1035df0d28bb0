-- Record the budget alerts a charge made reached (ziri_settle_charge calls it, under the key's
-- and the team's locks, after their totals took the charge). p_watches: a JSON array of
-- alerts.rules.Watch ({scope, period, limitName, limit (micros), threshold, user}), the key's
-- and its team's limits times the thresholds. A watch is reached when the period's spend is at
-- least threshold percent of its limit: the SQL mirror of alerts.rules.reached, held to it by
-- tests/alerts/test_rules.py. Each reached watch is one budget_alerts row per period start,
-- whichever host's charge reached it first: the unique index makes it once across hosts (the
-- NOT EXISTS spares the insert once the row is there). Return how many rows this call wrote.
CREATE OR REPLACE FUNCTION ziri_record_alerts(p_key text, p_team text, p_day text, p_month text, p_watches json)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    w json;
    v_period text;
    v_holder text;
    v_spent bigint;
    v_start timestamptz;
    v_written integer := 0;
    v_count integer;
BEGIN
    FOR w IN SELECT value FROM json_array_elements(p_watches) LOOP
        v_period := CASE WHEN w->>'period' = 'daily' THEN p_day ELSE p_month END;
        v_spent := NULL;
        IF w->>'scope' = 'key' THEN
            v_holder := p_key;
            SELECT spent_micros INTO v_spent FROM key_periods WHERE key_id = p_key AND period = v_period;
        ELSIF p_team IS NOT NULL THEN
            v_holder := p_team;
            SELECT spent_micros INTO v_spent FROM team_periods WHERE team_id = p_team AND period = v_period;
        ELSE
            CONTINUE;  -- a team's watch for a charge that counts for no team
        END IF;
        IF coalesce(v_spent, 0) * 100 >= (w->>'limit')::bigint * (w->>'threshold')::integer THEN
            v_start := (CASE WHEN length(v_period) = 7 THEN v_period || '-01' ELSE v_period END)::date::timestamp
                       AT TIME ZONE 'UTC';
            INSERT INTO budget_alerts (scope, holder_id, user_id, period, limit_name, threshold, period_start,
                                       spent_micros, limit_micros, at, next_attempt_at)
            SELECT w->>'scope', v_holder, w->>'user', w->>'period', w->>'limitName', (w->>'threshold')::integer,
                   v_start, v_spent, (w->>'limit')::bigint, ziri_now(), ziri_now()
             WHERE NOT EXISTS (SELECT 1 FROM budget_alerts
                                WHERE scope = w->>'scope' AND holder_id = v_holder AND period = w->>'period'
                                  AND limit_name = w->>'limitName' AND threshold = (w->>'threshold')::integer
                                  AND period_start = v_start)
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS v_count = ROW_COUNT;
            v_written := v_written + v_count;
        END IF;
    END LOOP;
    RETURN v_written;
END $$;
