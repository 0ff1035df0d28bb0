-- Recompute the counters of p_teams (team_locks', team_periods' and the records' team admission
-- ordinals) from their records and open reservations, as ziri_rebuild_counters does a key's:
-- after an import (archive.py). The caller holds the teams' locks.
CREATE OR REPLACE FUNCTION ziri_rebuild_team_counters(p_teams text[]) RETURNS void LANGUAGE sql VOLATILE AS $f$
    UPDATE ledger_records r SET team_admission = n.admission
      FROM (SELECT id, row_number() OVER (PARTITION BY team_id ORDER BY ts, id) AS admission FROM ledger_records
             WHERE type = 'reservation' AND team_id = ANY(p_teams)) n
     WHERE r.id = n.id AND r.team_admission IS DISTINCT FROM n.admission;
    UPDATE team_locks t SET admitted = coalesce(s.admitted, 0), last_reserved_at = s.last,
                            in_flight = (SELECT count(*) FROM open_reservations o WHERE o.team_id = t.team_id)
      FROM (SELECT teams.team_id, count(r.id) AS admitted, max(r.ts) AS last FROM unnest(p_teams) AS teams (team_id)
              LEFT JOIN ledger_records r ON r.team_id = teams.team_id AND r.type = 'reservation'
             GROUP BY teams.team_id) s
     WHERE t.team_id = s.team_id;
    DELETE FROM team_periods WHERE team_id = ANY(p_teams);
    WITH final AS (
      SELECT s.team_id, s.reserved_at, s.micros FROM ledger_records s
      WHERE s.team_id = ANY(p_teams) AND (s.type = 'charge' OR (s.type = 'reservation_expired' AND NOT EXISTS (
        SELECT 1 FROM ledger_records c WHERE c.request_id = s.request_id AND c.type = 'charge')))
    ), counted AS (
      SELECT team_id, to_char(reserved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS period, micros, 0 AS requests,
             0::bigint AS held FROM final
      UNION ALL SELECT team_id, to_char(reserved_at AT TIME ZONE 'UTC', 'YYYY-MM'), micros, 0, 0 FROM final
      UNION ALL SELECT team_id, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 0, 1, 0 FROM ledger_records
                WHERE type = 'reservation' AND team_id = ANY(p_teams)
      UNION ALL SELECT team_id, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM'), 0, 1, 0 FROM ledger_records
                WHERE type = 'reservation' AND team_id = ANY(p_teams)
      UNION ALL SELECT team_id, period, 0, 0, micros FROM open_reservations,
                unnest(ARRAY[to_char(reserved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                             to_char(reserved_at AT TIME ZONE 'UTC', 'YYYY-MM')]) AS period
                WHERE team_id = ANY(p_teams)
    )
    INSERT INTO team_periods (team_id, period, spent_micros, requests, held_micros)
    SELECT team_id, period, sum(micros), sum(requests), sum(held) FROM counted GROUP BY team_id, period;
$f$;
