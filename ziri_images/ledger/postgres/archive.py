"""The PostgreSQL store's whole-ledger operations: export, import and the spend report.

These serve the operator's commands, not requests, so a database fault is a ``ConfigError``
naming the database (the command prints one line and exits 1). The report's grouping runs in
SQL: PostgreSQL reads the rows, Python receives one row per group.
"""

from contextlib import contextmanager

import psycopg

from ...errors import ConfigError
from ..base import Archive
from ..money import parse_ts
from ..parse import parse_record
from ..records import encode_json
from ..report import UNKNOWN
from ..report import Report
from ..report import Totals
from .connection import describe
from .connection import error_text

_IMPORT_BATCH = 1000

# Group expressions by name: fixed SQL, never text from the command line.
_GROUPS = {
    "key": "s.key_id",
    "user": f"coalesce(s.user_id, r.user_id, '{UNKNOWN}')",
    "model": f"coalesce(s.model, r.model, '{UNKNOWN}')",
    "day": "to_char(s.reserved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    # From the record as written (records from before edits name none: they were generations).
    "endpoint": "coalesce(s.record->>'endpoint', r.record->>'endpoint', 'generations')",
}

# Each request once, at its reservation's time, at its final amount: its charge, else its expiry.
# The SQL mirror of usage.fold_expiry ("a charge replaces an expiry"), which the file store's report folds.
_REPORT = """
SELECT {groups}, count(*), coalesce(sum(s.images), 0), coalesce(sum(s.micros), 0)::bigint,
       count(*) FILTER (WHERE s.type = 'reservation_expired')
FROM ledger_records s
LEFT JOIN ledger_records r ON r.request_id = s.request_id AND r.type = 'reservation'
WHERE s.type IN ('charge', 'reservation_expired')
  AND (s.type = 'charge'
       OR NOT EXISTS (SELECT 1 FROM ledger_records c WHERE c.request_id = s.request_id AND c.type = 'charge'))
  AND s.reserved_at >= %(since)s AND s.reserved_at < %(until)s
GROUP BY {groups}
"""

_IMPORT = """
INSERT INTO ledger_records (ts, type, request_id, key_id, user_id, model, reserved_at, micros, images,
                            idempotency_key, record)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (request_id, type) DO NOTHING
RETURNING key_id
"""

# After an import, rebuild the derived rows of the keys it touched from their records (under
# their locks, taken in key order so two imports cannot deadlock).
_REBUILD = tuple(statement for statement in """
INSERT INTO key_locks (key_id) SELECT DISTINCT unnest(%(keys)s::text[]) ORDER BY 1
ON CONFLICT (key_id) DO UPDATE SET key_id = EXCLUDED.key_id;
DELETE FROM key_periods WHERE key_id = ANY(%(keys)s);
WITH final AS (
  SELECT s.key_id, s.reserved_at, s.micros FROM ledger_records s
  WHERE s.key_id = ANY(%(keys)s) AND (s.type = 'charge' OR (s.type = 'reservation_expired' AND NOT EXISTS (
    SELECT 1 FROM ledger_records c WHERE c.request_id = s.request_id AND c.type = 'charge')))
), counted AS (
  SELECT key_id, to_char(reserved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS period, micros, 0 AS requests FROM final
  UNION ALL SELECT key_id, to_char(reserved_at AT TIME ZONE 'UTC', 'YYYY-MM'), micros, 0 FROM final
  UNION ALL SELECT key_id, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 0, 1 FROM ledger_records
            WHERE type = 'reservation' AND key_id = ANY(%(keys)s)
  UNION ALL SELECT key_id, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM'), 0, 1 FROM ledger_records
            WHERE type = 'reservation' AND key_id = ANY(%(keys)s)
)
INSERT INTO key_periods (key_id, period, spent_micros, requests)
SELECT key_id, period, sum(micros), sum(requests) FROM counted GROUP BY key_id, period;
DELETE FROM open_reservations o WHERE o.key_id = ANY(%(keys)s) AND EXISTS (
  SELECT 1 FROM ledger_records s WHERE s.request_id = o.request_id AND s.type <> 'reservation');
INSERT INTO open_reservations (request_id, key_id, micros, reserved_at, expires_at, worker)
SELECT r.request_id, r.key_id, r.micros, r.ts, (r.record ->> 'expiresAt')::timestamptz,
       coalesce(r.record ->> 'worker', '')
FROM ledger_records r
WHERE r.type = 'reservation' AND r.key_id = ANY(%(keys)s) AND NOT EXISTS (
  SELECT 1 FROM ledger_records s WHERE s.request_id = r.request_id AND s.type <> 'reservation')
ON CONFLICT (request_id) DO NOTHING;
SELECT ziri_rebuild_counters(%(keys)s::text[])
""".split(";\n") if statement.strip())


def _bound(ts, default):
    return parse_ts(ts) if ts else default


class PostgresArchive(Archive):
    """Export, import and report for ``PostgresStore`` (a mixin: it uses the store's pool)."""

    @contextmanager
    def _command_connection(self):
        """Yield a pooled connection in a transaction; a database fault is a ConfigError naming the database."""
        try:
            with self._pool().connection() as connection, connection.transaction():
                yield connection
        except psycopg.Error as error:
            raise ConfigError(f"database {describe(self.conninfo)}: {error_text(error)}") from None

    def records(self, since=None, until=None):
        with self._command_connection() as connection:
            # A server-side cursor: the export streams, whatever the ledger's size.
            with connection.cursor(name="ledger_export") as cursor:
                cursor.itersize = 2000
                cursor.execute("SELECT record FROM ledger_records WHERE ts >= %s AND ts < %s ORDER BY id",
                               (_bound(since, "-infinity"), _bound(until, "infinity")))
                for (record,) in cursor:
                    yield record

    def import_records(self, records):
        written = read = 0
        keys = set()
        with self._command_connection() as connection, connection.cursor() as cursor:
            batch = []
            for value in records:
                read += 1
                record = parse_record(value)
                if record is None:
                    continue
                batch.append(record)
                if len(batch) >= _IMPORT_BATCH:
                    written += self._import_batch(cursor, batch, keys)
                    batch = []
            written += self._import_batch(cursor, batch, keys)
            if keys:
                for statement in _REBUILD:
                    cursor.execute(statement, {"keys": sorted(keys)})
        return written, read - written

    def _import_batch(self, cursor, batch, keys):
        if not batch:
            return 0
        cursor.executemany(_IMPORT, [
            (parse_ts(record.ts), record.kind, record.request_id, record.key_id, record.user, record.model,
             parse_ts(record.reserved_at), record.micros, record.images, record.idempotency_key,
             encode_json(record.fields))
            for record in batch], returning=True)
        written = 0
        for _ in cursor.results():
            row = cursor.fetchone()
            if row is not None:  # None: already stored (the unique index), so not written twice
                written += 1
                keys.add(row[0])
        return written

    def report(self, by=("key",), since=None, until=None, progress=None):
        for name in by:
            if name not in _GROUPS:
                raise ValueError(f"cannot group by {name!r} (choose from {', '.join(_GROUPS)})")
        by = tuple(by)
        result = Report(by=by, since=since, until=until)
        sql = _REPORT.format(groups=", ".join(_GROUPS[name] for name in by))
        with self._command_connection() as connection:
            rows = connection.execute(sql, {"since": _bound(since, "-infinity"),
                                            "until": _bound(until, "infinity")}).fetchall()
        for row in rows:
            group, (requests, images, micros, expired) = tuple(row[:len(by)]), row[len(by):]
            totals = result.groups.setdefault(group, Totals())
            totals.add(requests, images, micros, expired)
            result.lines += requests
        result.parsed = result.lines
        if progress is not None:
            progress(1, 1)
        return result
