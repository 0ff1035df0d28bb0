"""The PostgreSQL store's refusal record: the ``refusal_counts`` table, one row per day, key and code.

Each process's aggregated counts (``ops.refusals.RefusalCounter``) are added with one upsert per
flush, so a flood of refusals costs the database a few statements every few seconds, never a
row per request, and never a row in ``ledger_records``.
"""

from ...errors import ApiError
from ...errors import ConfigError
from .connection import describe
from .sql import named

_SQL = named("refusals.sql")


class PostgresRefusals:
    """``add_refusals(rows)`` and ``refusal_rows(since_day, until_day)`` on the store's database."""

    def __init__(self, store):
        self.store = store

    def add_refusals(self, rows):
        # Sorted by the primary key, so two processes' upserts take the rows' locks in one order.
        values = sorted((row["day"], row["keyId"], row["code"], row["count"]) for row in rows)
        with self.store.transaction() as cursor:
            cursor.executemany(_SQL["add_refusals"], values)

    def refusal_rows(self, since_day=None, until_day=None):
        """Return the rows of days ``since_day <= day < until_day``; a database fault names the database."""
        try:
            with self.store.transaction() as cursor:
                bounds = {"since": since_day or "0001-01-01", "until": until_day or "9999-12-31"}
                cursor.execute(_SQL["refusal_rows"], bounds)
                found = cursor.fetchall()
        except ApiError:
            raise ConfigError(f"database {describe(self.store.conninfo)}: refusal counts cannot be read") from None
        return [{"day": day, "keyId": key_id, "code": code, "count": refused} for day, key_id, code, refused in found]
