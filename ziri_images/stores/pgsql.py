"""The SQL of the PostgreSQL store's request path, each statement with what it rules out.

Every decision runs while its transaction holds the key's row lock (``LOCK_KEY``), so the
reads that build a ``KeyUsage`` and the reservation that follows are one atomic step for that
key across every process and host. A settle needs no key lock (see ``ziri_settle_charge`` in pgschema.py).
"""

# Lock the key's row until the transaction ends (reserve, usage, the sweep). Rules out two
# reservations of one key both seeing the budget free or the rate window open (lost update), and
# two requests with one Idempotency-Key both being admitted. A plain row lock, not an update:
# waiting requests queue on it without writing a row version each. (A charge and an expiry
# racing for one reservation are ruled out by the open reservation's row: see ziri_settle_charge.)
LOCK_KEY = "SELECT key_id FROM key_locks WHERE key_id = %(key)s FOR UPDATE"

# The key's first request creates its row (two first requests at once: one inserts, both then lock).
CREATE_KEY = "INSERT INTO key_locks (key_id) VALUES (%(key)s) ON CONFLICT (key_id) DO NOTHING"

# Take the key's stale reservations out of the open set: past their expiry on the gateway's
# clock, or held by a process whose lease has lapsed on the database's clock. DELETE ... RETURNING
# hands each one to exactly one settler.
TAKE_STALE = """
DELETE FROM open_reservations r
WHERE r.key_id = %(key)s
  AND (r.expires_at <= %(now)s
       OR NOT EXISTS (SELECT 1 FROM worker_leases l WHERE l.worker = r.worker AND l.expires_at > clock_timestamp()))
RETURNING r.request_id, r.micros, r.reserved_at, r.expires_at, r.worker
"""

# Keys with a reservation whose process's lease has lapsed (for the background sweep).
KEYS_WITH_DEAD_WORKERS = """
SELECT DISTINCT r.key_id FROM open_reservations r
WHERE NOT EXISTS (SELECT 1 FROM worker_leases l WHERE l.worker = r.worker AND l.expires_at > clock_timestamp())
"""

# Reserve's first round trip (and the usage endpoint's): lock the key's row, take its stale
# reservations, read everything the checks need; see ziri_reserve_begin in pgschema.py.
RESERVE_BEGIN = """
SELECT * FROM ziri_reserve_begin(%(key)s::text, %(now)s::timestamptz, %(digest)s::text, %(rate_window)s::interval,
                                 %(idempotency_window)s::interval)
"""

# Settle in one round trip: see ziri_settle_charge in pgschema.py.
SETTLE_CHARGE = """
SELECT ziri_settle_charge(%(request_id)s::text, %(key)s::text, %(user)s::text, %(model)s::text,
                          %(reserved_at)s::timestamptz, %(ts)s::timestamptz, %(micros)s::bigint, %(images)s::integer,
                          %(record)s::json, %(late_record)s::json, %(day)s::text, %(month)s::text)
"""

# The reservation: its record, its open row and the request counts, in one round trip.
INSERT_RESERVATION = """
WITH record AS (
  INSERT INTO ledger_records (ts, type, request_id, key_id, user_id, model, reserved_at, micros, idempotency_key,
                              record)
  VALUES (%(ts)s, 'reservation', %(request_id)s, %(key)s, %(user)s, %(model)s, %(ts)s, %(micros)s, %(digest)s,
          %(record)s)
), held AS (
  INSERT INTO open_reservations (request_id, key_id, micros, reserved_at, expires_at, worker)
  VALUES (%(request_id)s, %(key)s, %(micros)s, %(ts)s, %(expires_at)s, %(worker)s)
)
INSERT INTO key_periods (key_id, period, requests) VALUES (%(key)s, %(day)s, 1), (%(key)s, %(month)s, 1)
ON CONFLICT (key_id, period) DO UPDATE SET requests = key_periods.requests + 1
"""

# A charge or an expiry, and what it adds to the spent totals of the periods the request was
# reserved in (a charge: its cost minus any expiry it replaces), in one statement. ON CONFLICT DO
# NOTHING with the unique (request_id, type) index: a charge written twice (a retried settle, a
# spooled charge whose first attempt did commit) is stored, and counted, once.
WRITE_SETTLEMENT = """
WITH written AS (
  INSERT INTO ledger_records (ts, type, request_id, key_id, user_id, model, reserved_at, micros, images, record)
  VALUES (%(ts)s, %(type)s, %(request_id)s, %(key)s, %(user)s, %(model)s, %(reserved_at)s, %(micros)s, %(images)s,
          %(record)s)
  ON CONFLICT (request_id, type) DO NOTHING
  RETURNING key_id
)
INSERT INTO key_periods (key_id, period, spent_micros)
SELECT key_id, period, %(delta)s FROM written, unnest(ARRAY[%(day)s, %(month)s]::text[]) AS period
ON CONFLICT (key_id, period) DO UPDATE SET spent_micros = key_periods.spent_micros + EXCLUDED.spent_micros
"""

RATE_WINDOW = """
SELECT extract(epoch FROM ts)::float8 FROM ledger_records
WHERE type = 'reservation' AND key_id = %(key)s AND ts > %(window_start)s ORDER BY ts
"""

# Times on the database's clock: every host judges a lease by the same clock.
RENEW_LEASE = """
INSERT INTO worker_leases (worker, expires_at)
VALUES (%(worker)s, clock_timestamp() + make_interval(secs => %(seconds)s))
ON CONFLICT (worker) DO UPDATE SET expires_at = EXCLUDED.expires_at
"""

# Leases that lapsed a day ago: no reservation can still need them (each expires within minutes).
FORGET_LEASES = "DELETE FROM worker_leases WHERE expires_at < clock_timestamp() - interval '1 day'"
