-- Group commit (batch.py): the settles queued for one key in a process, in one transaction.
-- p_batch: a JSON array of ziri_settle_charge's arguments. Its results grew with alerts (migration 003).
DROP FUNCTION IF EXISTS ziri_settle_many(json);
CREATE OR REPLACE FUNCTION ziri_settle_many(p_batch json) RETURNS TABLE (r_open boolean, r_alerts integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v json;
BEGIN
    FOR v IN SELECT value FROM json_array_elements(p_batch) WITH ORDINALITY ORDER BY ordinality LOOP
        RETURN QUERY SELECT * FROM ziri_settle_charge(
            v->>'request_id', v->>'key', v->>'user', v->>'model', (v->>'reserved_at')::timestamptz,
            (v->>'ts')::timestamptz, (v->>'micros')::bigint, (v->>'images')::integer, (v->>'record')::json,
            (v->>'late_record')::json, v->>'day', v->>'month', v->>'team', v->>'end_user',
            CASE WHEN json_typeof(v->'watches') = 'array' THEN v->'watches' END);
    END LOOP;
END $$;
