-- Settle a reservation with its charge: p_record if it was still open, else p_record_after_expiry
-- (which replaces the expiry's amount). The open row decides a charge/expiry race: both DELETE
-- it and only one finds it; the other waits for that one's commit, then reads its expiry. The
-- unique (request_id, type) index stores (and counts) a charge written twice once. The key's row
-- is locked first, then its team's (p_team), in the order ziri_reserve and the expiries take their
-- locks (key_locks, team_locks, then the period totals), so a charge racing an expiry of its
-- reservation, or a reserve of the same team, cannot deadlock with it. p_team and p_end_user are
-- the reservation's (records.charge_record: the reservation is their authority), the end user as
-- records.counted_end_user counts it. With p_watches (alerts.rules.watches_json: the key's and the
-- team's limits and thresholds), a written charge records the budget alerts it makes reached
-- (ziri_record_alerts). Return whether the reservation was still open, and how many alerts it recorded.
-- The arguments grew with teams, end users and alerts (migration 003): the older one goes.
DROP FUNCTION IF EXISTS ziri_settle_charge(text, text, text, text, timestamptz, timestamptz, bigint, integer, json,
                                           json, text, text);
CREATE OR REPLACE FUNCTION ziri_settle_charge(
    p_request_id text, p_key text, p_user text, p_model text, p_reserved_at timestamptz, p_ts timestamptz,
    p_micros bigint, p_images integer, p_record json, p_record_after_expiry json, p_day text, p_month text,
    p_team text, p_end_user text, p_watches json, OUT o_open boolean, OUT o_alerts integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_held bigint;
    v_open boolean;
    v_expired bigint := 0;
    v_written boolean;
    v_spent bigint;
BEGIN
    PERFORM 1 FROM key_locks WHERE key_id = p_key FOR UPDATE;
    IF p_team IS NOT NULL THEN
        PERFORM 1 FROM team_locks WHERE team_id = p_team FOR UPDATE;
    END IF;
    DELETE FROM open_reservations WHERE request_id = p_request_id RETURNING micros INTO v_held;
    v_open := FOUND;
    IF v_open THEN
        UPDATE key_locks SET in_flight = in_flight - 1 WHERE key_id = p_key;
        IF p_team IS NOT NULL THEN
            UPDATE team_locks SET in_flight = in_flight - 1 WHERE team_id = p_team;
        END IF;
    ELSE
        SELECT coalesce(max(micros), 0) INTO v_expired FROM ledger_records
         WHERE request_id = p_request_id AND type = 'reservation_expired';
    END IF;
    INSERT INTO ledger_records (ts, type, request_id, key_id, user_id, model, reserved_at, micros, images, team_id,
                                end_user, record)
    VALUES (p_ts, 'charge', p_request_id, p_key, p_user, p_model, p_reserved_at, p_micros, p_images, p_team,
            nullif(p_end_user, ''), CASE WHEN v_open THEN p_record ELSE p_record_after_expiry END)
    ON CONFLICT (request_id, type) DO NOTHING;
    v_written := FOUND;
    IF v_written OR v_open THEN
        v_spent := CASE WHEN v_written THEN p_micros - v_expired ELSE 0 END;
        INSERT INTO key_periods (key_id, period, spent_micros, held_micros)
        VALUES (p_key, p_day, v_spent, -coalesce(v_held, 0)), (p_key, p_month, v_spent, -coalesce(v_held, 0))
        ON CONFLICT (key_id, period) DO UPDATE SET spent_micros = key_periods.spent_micros + EXCLUDED.spent_micros,
                                                   held_micros = key_periods.held_micros + EXCLUDED.held_micros;
        IF p_team IS NOT NULL THEN
            INSERT INTO team_periods (team_id, period, spent_micros, held_micros)
            VALUES (p_team, p_day, v_spent, -coalesce(v_held, 0)), (p_team, p_month, v_spent, -coalesce(v_held, 0))
            ON CONFLICT (team_id, period) DO UPDATE
                SET spent_micros = team_periods.spent_micros + EXCLUDED.spent_micros,
                    held_micros = team_periods.held_micros + EXCLUDED.held_micros;
        END IF;
        INSERT INTO end_user_days (key_id, end_user, day, spent_micros, held_micros)
        VALUES (p_key, coalesce(p_end_user, ''), p_day, v_spent, -coalesce(v_held, 0))
        ON CONFLICT (key_id, end_user, day) DO UPDATE
            SET spent_micros = end_user_days.spent_micros + EXCLUDED.spent_micros,
                held_micros = end_user_days.held_micros + EXCLUDED.held_micros;
    END IF;
    o_open := v_open;
    o_alerts := 0;
    IF v_written AND p_watches IS NOT NULL THEN
        BEGIN  -- its own subtransaction: an alert that cannot be recorded never fails the charge
            o_alerts := ziri_record_alerts(p_key, p_team, p_day, p_month, p_watches);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'budget alerts of % not recorded: %', p_request_id, SQLERRM;
        END;
    END IF;
END $$;
