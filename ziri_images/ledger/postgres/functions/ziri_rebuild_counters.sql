-- Recompute the counters of p_keys (key_locks' and key_periods') from their records and open
-- reservations: after an import (report.py). The caller holds the keys' locks.
CREATE OR REPLACE FUNCTION ziri_rebuild_counters(p_keys text[]) RETURNS void LANGUAGE sql VOLATILE AS $f$
    UPDATE ledger_records r SET admission = n.admission
      FROM (SELECT id, row_number() OVER (PARTITION BY key_id ORDER BY ts, id) AS admission FROM ledger_records
             WHERE type = 'reservation' AND key_id = ANY(p_keys)) n
     WHERE r.id = n.id AND r.admission IS DISTINCT FROM n.admission;
    UPDATE key_locks k SET admitted = coalesce(s.admitted, 0), last_reserved_at = s.last,
                           in_flight = (SELECT count(*) FROM open_reservations o WHERE o.key_id = k.key_id)
      FROM (SELECT keys.key_id, count(r.id) AS admitted, max(r.ts) AS last FROM unnest(p_keys) AS keys (key_id)
              LEFT JOIN ledger_records r ON r.key_id = keys.key_id AND r.type = 'reservation'
             GROUP BY keys.key_id) s
     WHERE k.key_id = s.key_id;
    UPDATE key_periods SET held_micros = 0 WHERE key_id = ANY(p_keys);
    INSERT INTO key_periods (key_id, period, held_micros)
    SELECT key_id, period, sum(micros) FROM open_reservations,
           unnest(ARRAY[to_char(reserved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                        to_char(reserved_at AT TIME ZONE 'UTC', 'YYYY-MM')]) AS period
     WHERE key_id = ANY(p_keys) GROUP BY key_id, period
    ON CONFLICT (key_id, period) DO UPDATE SET held_micros = EXCLUDED.held_micros;
$f$;
