"""The file store's alert outbox: ``alerts.jsonl`` beside the ledger, one JSON line per event of an alert's life.

Lines (each with ``ts`` and ``type``): ``alert`` (recorded: its fields and ``alertId``),
``claim`` (a sender posts it until ``until``, epoch seconds) and ``attempt`` (its outcome:
``status``, ``attempts``, ``nextAt``, ``error``). Every process folds the file into the same view,
following it from its last offset, under the file's own ``flock`` (``jsonl.Ledger``). The store
records alerts while it holds the ledger's lock (ledger, then outbox: the sender takes the
outbox's alone), so an alert is recorded once across the host's workers, whichever charge
reached it first. The file is not fsynced: an alert lost to a crash is recorded again by the
next charge that finds its watch reached (alerts/rules.py), a lost delivery mark means one more post.
"""

import json
import logging
import os
import secrets
import threading
import time
from dataclasses import replace
from datetime import datetime
from datetime import timezone

from ...alerts.events import Alert
from ...alerts.rules import reached
from ..money import day_of
from ..money import format_ts
from ..money import month_of
from .jsonl import Ledger

log = logging.getLogger("ziri_images")

_ALERT_FIELDS = ("scope", "holder", "user", "period", "limit_name", "threshold", "spent_micros", "limit_micros",
                 "period_start", "at")


def period_start(period, reserved_at):
    """Return the first moment (a ledger timestamp) of the day or month ``reserved_at`` counts in."""
    start = day_of(reserved_at) if period == "daily" else month_of(reserved_at) + "-01"
    return start + "T00:00:00.000000Z"


def reached_alerts(state, reservation, watches, now):
    """Return an ``Alert`` (no id yet) for each of ``watches`` the spend in ``state`` reaches, a charge counted."""
    found = []
    for watch in watches:
        tally, holder = (state.keys, reservation.key_id) if watch.scope == "key" else (state.teams, reservation.team)
        if holder is None:
            continue  # a team's watch for a request that counts for no team
        period = (day_of if watch.period == "daily" else month_of)(reservation.reserved_at)
        spent = tally.spent.get((holder, period), 0)
        if reached(spent, watch):
            found.append(Alert("", watch.scope, holder, watch.user, watch.period, watch.limit_name, watch.threshold,
                               spent, watch.limit_micros, period_start(watch.period, reservation.reserved_at),
                               format_ts(now)))
    return found


def record_reached(outbox, state, watched, now):
    """Record in ``outbox`` the alerts each (reservation, watches) of ``watched`` reaches; never raise.

    Called once the charges are written, still under the ledger's lock: a failure here must not
    fail them (a later charge records what is still reached).
    """
    try:
        outbox.record([alert for reservation, watches in watched
                       for alert in reached_alerts(state, reservation, watches, now)])
    except Exception as error:
        log.error("budget alerts not recorded: %s", getattr(error, "message", type(error).__name__))


def _now():
    return format_ts(datetime.now(timezone.utc))


class FileAlertOutbox:
    """Record alerts once, and let senders claim, retry and finish them, in one JSONL file."""

    def __init__(self, path):
        self.path = path
        self.on_record = None  # called after alerts were recorded (the sender's wake)
        self._file = None
        self._opening = threading.Lock()
        self._offset = 0
        self._alerts = {}  # alertId -> Alert
        self._recorded = set()  # Alert.unique_key() of every alert recorded
        self._claims = {}  # alertId -> epoch seconds its claim lasts until
        self._next = {}  # alertId -> epoch seconds of its next attempt

    @classmethod
    def beside(cls, ledger_path):
        return cls(os.path.join(os.path.dirname(os.path.abspath(ledger_path)), "alerts.jsonl"))

    def _transaction(self):
        with self._opening:  # one Ledger (one descriptor, one thread lock) per process
            if self._file is None:
                self._file = Ledger(self.path, durable=False)
        return self._file.transaction()

    def _catch_up(self):
        lines, self._offset = self._file.read_from(self._offset)
        for line in lines:
            self._apply(line)

    def _apply(self, line):
        try:
            entry = json.loads(line)
            kind, alert_id = entry["type"], entry["alertId"]
            if kind == "alert":
                alert = Alert(alert_id, *(entry[name] for name in _ALERT_FIELDS))
                self._alerts[alert_id] = alert
                self._recorded.add(alert.unique_key())
                self._next[alert_id] = 0.0
            elif kind == "claim":
                self._claims[alert_id] = entry["until"]
            elif kind == "attempt" and alert_id in self._alerts:
                self._alerts[alert_id] = replace(self._alerts[alert_id], status=entry["status"],
                                                 attempts=entry["attempts"], last_error=entry.get("error"),
                                                 finished_at=entry.get("finishedAt"))
                self._next[alert_id] = entry.get("nextAt") or 0.0
                self._claims.pop(alert_id, None)
        except (ValueError, KeyError, TypeError):
            pass  # not a line of this format: nothing to fold

    def _write(self, transaction, entries):
        for entry in entries:
            transaction.append({"ts": _now(), **entry})
        transaction.commit(sync=False)
        self._catch_up()

    def record(self, found):
        """Record each of ``found`` (``Alert`` values) not recorded before; return those recorded now."""
        if not found:
            return []
        with self._transaction() as transaction:
            self._catch_up()
            new, keys = [], set()
            for alert in found:
                if alert.unique_key() not in self._recorded and alert.unique_key() not in keys:
                    keys.add(alert.unique_key())
                    new.append(replace(alert, id="alr_" + secrets.token_hex(8)))
            self._write(transaction, [{"type": "alert", "alertId": alert.id,
                                       **{name: getattr(alert, name) for name in _ALERT_FIELDS}} for alert in new])
        if new and self.on_record is not None:
            self.on_record()
        return new

    def claim_due(self, worker, limit, claim_seconds):
        """Claim up to ``limit`` pending alerts whose next attempt is due; return copies of them, oldest first."""
        now = time.time()
        with self._transaction() as transaction:
            self._catch_up()
            # Oldest first; among alerts of one moment, in the order recorded (the dict's: a stable sort).
            due = sorted((alert for alert in self._alerts.values() if alert.status == "pending"
                          and self._next.get(alert.id, 0.0) <= now and self._claims.get(alert.id, 0.0) <= now),
                         key=lambda alert: alert.at)[:limit]
            self._write(transaction, [{"type": "claim", "alertId": alert.id, "worker": worker,
                                       "until": now + claim_seconds} for alert in due])
        return [replace(alert) for alert in due]

    def retry_later(self, alert, delay, error):
        """Record a failed attempt of ``alert`` (its ``attempts`` counted): due again in ``delay`` seconds."""
        self._attempt(alert, "pending", error, next_at=time.time() + delay)

    def finish(self, alert, status, error):
        """Record ``alert`` delivered or failed after its ``attempts``."""
        self._attempt(alert, status, error, finished_at=_now())

    def _attempt(self, alert, status, error, next_at=None, finished_at=None):
        with self._transaction() as transaction:
            self._catch_up()
            self._write(transaction, [{"type": "attempt", "alertId": alert.id, "status": status,
                                       "attempts": alert.attempts, "error": error, "nextAt": next_at,
                                       "finishedAt": finished_at}])

    def alerts(self, since=None, status=None):
        """Return the alerts recorded at ``since`` (a ledger timestamp) or later, newest first."""
        if self._file is None and not os.path.exists(self.path):
            return []
        with self._transaction():
            self._catch_up()
            found = [replace(alert) for alert in reversed(self._alerts.values())
                     if (since is None or alert.at >= since) and (status is None or alert.status == status)]
        return sorted(found, key=lambda alert: alert.at, reverse=True)  # newest first, the last recorded first
