"""The PostgreSQL store's alert outbox: the ``budget_alerts`` table, read and updated by the senders of every host.

An alert is recorded by ``ziri_record_alerts`` in the transaction of the charge that reached it
(its unique index: once across hosts); ``claim_due``, ``retry_later``, ``finish`` and ``alerts``
are alerts.sql's statements. A database fault is the store's 503 (``ApiError``): the sender
tries again on its next pass.
"""

from ...alerts.events import Alert
from ..money import format_ts
from .sql import named

_SQL = named("alerts.sql")


def _alert(row):
    """Return the ``Alert`` of one row (the columns of claim_due's and list's results)."""
    (alert_id, scope, holder, user, period, limit_name, threshold, spent, limit, period_start, at, status, attempts,
     last_error, finished_at) = row
    return Alert(str(alert_id), scope, holder, user, period, limit_name, threshold, spent, limit,
                 format_ts(period_start), format_ts(at), status, attempts, last_error,
                 format_ts(finished_at) if finished_at is not None else None)


class PostgresAlertOutbox:
    """Claim, retry, finish and list the budget alerts of ``store``'s database."""

    def __init__(self, store):
        self.store = store
        self.on_record = None  # called after a charge recorded alerts (the sender's wake)

    def recorded(self, count):
        """Say that a charge of this process recorded ``count`` alerts."""
        if count and self.on_record is not None:
            self.on_record()

    def claim_due(self, worker, limit, claim_seconds):
        with self.store.transaction() as cursor:
            rows = cursor.execute(_SQL["claim_due"], {"limit": limit, "seconds": claim_seconds}).fetchall()
        return sorted((_alert(row) for row in rows), key=lambda alert: (alert.at, int(alert.id)))

    def retry_later(self, alert, delay, error):
        with self.store.transaction() as cursor:
            cursor.execute(_SQL["retry_later"], {"id": int(alert.id), "attempts": alert.attempts, "error": error,
                                                 "delay": delay})

    def finish(self, alert, status, error):
        with self.store.transaction() as cursor:
            cursor.execute(_SQL["finish"], {"id": int(alert.id), "status": status, "attempts": alert.attempts,
                                            "error": error})

    def alerts(self, since=None, status=None):
        with self.store.transaction() as cursor:
            rows = cursor.execute(_SQL["list"], {"since": since or "-infinity", "status": status}).fetchall()
        return [_alert(row) for row in rows]
