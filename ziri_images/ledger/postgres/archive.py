"""The PostgreSQL store's whole-ledger operations: export, import and the spend report.

These serve the operator's commands, not requests, so a database fault is a ``ConfigError``
naming the database (the command prints one line and exits 1). The report's grouping runs in
SQL: PostgreSQL reads the rows, Python receives one row per group. The statements are archive.sql's.
"""

import heapq
from contextlib import contextmanager

import psycopg

from ...errors import ConfigError
from ..base import Archive
from ..base import split_audit
from ..money import parse_ts
from ..parse import parse_audit
from ..parse import parse_record
from ..records import encode_json
from ..report import GROUPINGS
from ..report import NONE
from ..report import UNKNOWN
from ..report import Report
from ..report import Totals
from ..report import check_groupings
from .connection import describe
from .connection import error_text
from .sql import named

_IMPORT_BATCH = 1000

_SQL = named("archive.sql")

# Group expressions by name: fixed SQL, never text from the command line.
_GROUPS = {name: _SQL[f"group_{name}"].format(unknown=UNKNOWN, none=NONE) for name in GROUPINGS}

_REBUILD = tuple(_SQL[f"rebuild_{step}"] for step in (
    "lock_keys", "lock_teams", "clear_periods", "periods", "drop_settled", "open_reservations", "counters",
    "team_counters", "clear_end_user_days", "end_user_days"))


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
        bounds = (_bound(since, "-infinity"), _bound(until, "infinity"))
        with self._command_connection() as connection:
            # Server-side cursors: the export streams, whatever the ledger's size. The audit
            # records (their own table) are merged in by time.
            ledger = self._stream(connection, "ledger_export", _SQL["export_records"], bounds)
            audit = self._stream(connection, "audit_export", _SQL["export_audit"], bounds)
            yield from heapq.merge(ledger, audit, key=lambda record: record["ts"])

    @staticmethod
    def _stream(connection, name, statement, bounds):
        with connection.cursor(name=name) as cursor:
            cursor.itersize = 2000
            cursor.execute(statement, bounds)
            for (record,) in cursor:
                yield record

    def import_records(self, records):
        written = read = 0
        keys, teams = set(), set()
        audit = []
        with self._command_connection() as connection, connection.cursor() as cursor:
            batch = []
            for value in split_audit(records, audit):
                read += 1
                record = parse_record(value)
                if record is None:
                    continue
                batch.append(record)
                if len(batch) >= _IMPORT_BATCH:
                    written += self._import_batch(cursor, batch, keys, teams)
                    batch = []
            written += self._import_batch(cursor, batch, keys, teams)
            if keys:
                for statement in _REBUILD:
                    cursor.execute(statement, {"keys": sorted(keys), "teams": sorted(teams)})
            written += self._import_audit(cursor, audit)
        return written, read + len(audit) - written

    @staticmethod
    def _import_audit(cursor, values):
        valid = [record for record in map(parse_audit, values) if record is not None]
        if not valid:
            return 0
        cursor.executemany(_SQL["import_audit"], [
            (parse_ts(record["ts"]), record["auditId"], encode_json(record)) for record in valid], returning=True)
        written = 0
        for _ in cursor.results():
            written += cursor.fetchone() is not None
        return written

    def _import_batch(self, cursor, batch, keys, teams):
        if not batch:
            return 0
        cursor.executemany(_SQL["import_record"], [
            (parse_ts(record.ts), record.kind, record.request_id, record.key_id, record.user, record.model,
             parse_ts(record.reserved_at), record.micros, record.images, record.idempotency_key, record.team,
             record.end_user, encode_json(record.fields))
            for record in batch], returning=True)
        written = 0
        for _ in cursor.results():
            row = cursor.fetchone()
            if row is not None:  # None: already stored (the unique index), so not written twice
                written += 1
                keys.add(row[0])
                if row[1] is not None:
                    teams.add(row[1])
        return written

    def report(self, by=("key",), since=None, until=None, progress=None):
        check_groupings(by)
        by = tuple(by)
        result = Report(by=by, since=since, until=until)
        sql = _SQL["report"].format(groups=", ".join(_GROUPS[name] for name in by))
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
