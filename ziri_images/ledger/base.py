"""The two interfaces every store implements, and what the stores share.

``Store`` is the request path: reserve, settle, usage, rate headers, readiness. ``Archive`` is the
operator's: every record, an import, the report. Both stores implement both.

A store keeps the ledger's records (``records.py`` defines them) and makes every decision
atomic: ``reserve`` settles stale reservations, builds the key's ``KeyUsage`` while it holds
that key's lock, runs ``checks.CHECKS`` and writes the reservation, all in one step; ``settle``
writes the charge in another. No lock is held while the provider is called.

Every method that writes raises ``ApiError`` 503 ``LEDGER_UNAVAILABLE`` (``ledger_unavailable``)
when the records cannot be kept, before anything is admitted.
"""

import abc
import os
import secrets
import socket

from ..errors import ApiError
from .parse import is_audit


def ledger_unavailable(reason, should_retry=False):
    """Return the 503 a request gets when its records cannot be kept."""
    return ApiError(503, "LEDGER_UNAVAILABLE", f"Cost ledger is not writable: {reason}", should_retry=should_retry)


class Store(abc.ABC):
    """Keep the ledger's records; reserve and settle spend atomically.

    ``clock()`` returns the current aware UTC datetime; a store reads it while it holds the
    key's lock, so the records of one key are written in time order. (The PostgreSQL store
    decides on the database's clock instead, one for every host: postgres/functions/ziri_now.sql.)
    ``reservation_ttl`` is how long (seconds) a reservation may stay open before it is settled at
    its reserved amount.
    """

    def __init__(self, clock, reservation_ttl):
        self.clock = clock
        self.reservation_ttl = reservation_ttl
        self._host = socket.gethostname()
        self._worker = None

    @property
    def worker(self):
        """Return this process's worker id, ``host:pid:token`` (written in its reservations)."""
        # Computed per process: gunicorn forks after the app (and the store) is created.
        pid = os.getpid()
        if self._worker is None or self._worker[0] != pid:
            self._worker = (pid, f"{self._host}:{pid}:{secrets.token_hex(4)}")
        return self._worker[1]

    @abc.abstractmethod
    def start(self):
        """Prepare to serve requests (replay the ledger, check the schema); return a line for the log."""

    @abc.abstractmethod
    def reserve(self, key, micros, details):
        """Admit one request for ``key`` and hold ``micros`` for it; return the ``records.Reservation``.

        One atomic step under the key's lock: settle the stale reservations it can see (with
        ``reservation_expired`` records), build the key's ``checks.KeyUsage`` (with the match for
        ``details.get("idempotencyKey")``), run ``checks.run_checks`` (which raises the client's
        ApiError) and write ``records.reservation_record(now, key, details, micros, now + ttl, worker)``.
        ``details`` is the request's summary (``requestId``, provider, model, choices, ...).
        """

    @abc.abstractmethod
    def settle(self, reservation, fields, watches=()):
        """Write the ``charge`` record for ``reservation`` with the outcome ``fields``; return the record.

        One atomic step: ``records.charge_record(now, reservation, fields, after_expiry)``, where
        ``after_expiry`` says the reservation was already settled by a ``reservation_expired``
        record (the charge then replaces that amount), and the budget alert of each of
        ``watches`` (``alerts.rules.Watch``) the spend now reaches, once per period start, in
        the store's outbox (``alert_outbox``). Never written twice for one request.
        """

    @abc.abstractmethod
    def key_usage(self, key):
        """Return ``key``'s ``checks.KeyUsage`` now, after settling its stale reservations."""

    @abc.abstractmethod
    def rate_summary(self, key_id):
        """Return (admissions of ``key_id`` in the rate window ending now, the oldest one's epoch seconds or None).

        For the ``X-RateLimit-*`` headers of every response: cheap, may lag the latest admissions
        of other workers by a moment, takes no lock.
        """

    @abc.abstractmethod
    def readiness(self):
        """Return (ok, reason): can a request's records be kept right now? ``reason`` is short and secret-free."""

    def refusal_record(self):
        """Return where refused requests are counted (``ops/refusals.py``): ``add_refusals``, ``refusal_rows``.

        A record apart from the ledger's: refusals cost nothing and must never grow the cost ledger.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no refusal record")

    def alert_outbox(self):
        """Return where budget alerts wait for the sender (``alerts/sender.py``): ``record``, ``claim_due``,
        ``retry_later``, ``finish``, ``alerts`` (``ledger/file/alerts.py``; the ``budget_alerts`` table).
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no alert outbox")

    def close(self):
        """Release what the store holds (descriptors, connections)."""


def split_audit(values, audit):
    """Yield the values that are not audit records; append the audit records to the list ``audit``."""
    for value in values:
        if is_audit(value):
            audit.append(value)
        else:
            yield value


class Archive(abc.ABC):
    """Read and write a store's records as a whole: the operator's export, import and report, never a request's path.

    The records include the ``audit`` records of key and team changes (``records.audit_record``),
    kept apart from the cost ledger's: the report and the limits never count them.
    """

    @abc.abstractmethod
    def records(self, since=None, until=None):
        """Yield every record (a dict, the file store's fields) oldest first, ``since <= ts < until``.

        ``since`` and ``until`` are ledger timestamps (``money.format_ts``) or None. Audit records
        are merged in by their time.
        """

    @abc.abstractmethod
    def import_records(self, records):
        """Write records made elsewhere (another store's export, a JSONL ledger) with their fields as they are.

        Each value is validated with ``parse.parse_record`` (``parse.parse_audit`` for an audit
        record; invalid ones are skipped and logged); a record whose (type, requestId) — an audit
        record's ``auditId`` — is already stored is skipped, so importing the same records twice
        writes them once. Return (written, skipped).
        """

    @abc.abstractmethod
    def report(self, by=("key",), since=None, until=None, progress=None):
        """Return the ``report.Report`` of spend and images grouped ``by`` ("key", "user", "model", "day").

        Each request counts once, at its reservation's time, at its final amount (its charge, or
        its expiry amount until a charge replaces it); ``since <= reservedAt < until``.
        ``progress(done, total)`` may be called now and then. Raise ValueError for an unknown grouping.
        """
