-- Settle a reservation with its charge: p_record if it was still open, else p_record_after_expiry
-- (which replaces the expiry's amount). The open row decides a charge/expiry race: both DELETE
-- it and only one finds it; the other waits for that one's commit, then reads its expiry. The
-- unique (request_id, type) index stores (and counts) a charge written twice once. The key's row
-- is locked first, in the order ziri_reserve and the expiries take their locks (key_locks, then
-- key_periods), so a charge racing an expiry of its reservation cannot deadlock with it.
-- Return whether the reservation was still open.
CREATE OR REPLACE FUNCTION ziri_settle_charge(
    p_request_id text, p_key text, p_user text, p_model text, p_reserved_at timestamptz, p_ts timestamptz,
    p_micros bigint, p_images integer, p_record json, p_record_after_expiry json, p_day text, p_month text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_held bigint;
    v_open boolean;
    v_expired bigint := 0;
    v_written boolean;
BEGIN
    PERFORM 1 FROM key_locks WHERE key_id = p_key FOR UPDATE;
    DELETE FROM open_reservations WHERE request_id = p_request_id RETURNING micros INTO v_held;
    v_open := FOUND;
    IF v_open THEN
        UPDATE key_locks SET in_flight = in_flight - 1 WHERE key_id = p_key;
    ELSE
        SELECT coalesce(max(micros), 0) INTO v_expired FROM ledger_records
         WHERE request_id = p_request_id AND type = 'reservation_expired';
    END IF;
    INSERT INTO ledger_records (ts, type, request_id, key_id, user_id, model, reserved_at, micros, images, record)
    VALUES (p_ts, 'charge', p_request_id, p_key, p_user, p_model, p_reserved_at, p_micros, p_images,
            CASE WHEN v_open THEN p_record ELSE p_record_after_expiry END)
    ON CONFLICT (request_id, type) DO NOTHING;
    v_written := FOUND;
    IF v_written OR v_open THEN
        INSERT INTO key_periods (key_id, period, spent_micros, held_micros)
        VALUES (p_key, p_day, CASE WHEN v_written THEN p_micros - v_expired ELSE 0 END, -coalesce(v_held, 0)),
               (p_key, p_month, CASE WHEN v_written THEN p_micros - v_expired ELSE 0 END, -coalesce(v_held, 0))
        ON CONFLICT (key_id, period) DO UPDATE SET spent_micros = key_periods.spent_micros + EXCLUDED.spent_micros,
                                                   held_micros = key_periods.held_micros + EXCLUDED.held_micros;
    END IF;
    RETURN v_open;
END $$;
