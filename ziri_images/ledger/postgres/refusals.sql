-- The refusal_counts table's statements (refusals.py): one row per day, key and code.

-- name: add_refusals
-- One upsert per row of a flush: the counts add up, whichever process wrote first.
INSERT INTO refusal_counts (day, key_id, code, refused) VALUES (%s::date, %s, %s, %s)
ON CONFLICT (day, key_id, code) DO UPDATE SET refused = refusal_counts.refused + EXCLUDED.refused

-- name: refusal_rows
SELECT to_char(day, 'YYYY-MM-DD'), key_id, code, refused FROM refusal_counts
WHERE day >= %(since)s::date AND day < %(until)s::date
ORDER BY day, key_id, code
